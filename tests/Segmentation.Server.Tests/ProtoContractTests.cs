namespace Segmentation.Server.Tests;

/// <summary>The protos are a public contract: buf STANDARD + COMMENTS lint must be clean.</summary>
public sealed class ProtoContractTests
{
    [Fact]
    public async Task Protos_are_buf_lint_clean()
    {
        var tools = Path.Combine(ExternalTools.RepoRoot, "tests", "contract");
        await ExternalTools.EnsureNodePackages(tools, "@bufbuild/buf", "protobufjs"); // protobufjs carries google/api/annotations.proto, which the protos import
        var buf = Path.Combine(tools, "node_modules", ".bin", "buf");

        var (exit, stdout, stderr) = await ExternalTools.Run(buf, "lint", ExternalTools.RepoRoot, TimeSpan.FromMinutes(2));

        Assert.True(exit == 0, $"buf lint found problems:\n{stdout}{stderr}");
        Assert.True(File.Exists(Path.Combine(ExternalTools.RepoRoot, "protos", "segmentation", "v1", "decision_service.proto")));
    }
}
