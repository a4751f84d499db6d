using System.Buffers.Binary;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>Frames read from files: a damaged length is reported as damage, whatever its value.</summary>
public sealed class FramingTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"seg-frame-{Guid.NewGuid():N}.bin");

    public void Dispose() => File.Delete(_path);

    [Theory]
    [InlineData(0x9000_0000u)] // past int.MaxValue: was an ArgumentOutOfRangeException, which the journals' readers do not take for damage
    [InlineData(0xFFFF_FFF0u)]
    public void A_length_past_the_largest_array_is_damage_even_in_a_file_that_long(uint length)
    {
        using (var file = new FileStream(_path, FileMode.CreateNew))
        {
            Span<byte> head = stackalloc byte[Framing.HeaderSize];
            BinaryPrimitives.WriteUInt32LittleEndian(head, length);
            file.Write(head);
            file.SetLength(5L << 30); // sparse: a file of 5 GiB that takes no room
        }

        using var read = new FileStream(_path, FileMode.Open, FileAccess.Read);
        var damaged = Assert.Throws<InvalidDataException>(() => Framing.ReadNext(read, "test file"));
        Assert.Contains("damaged", damaged.Message, StringComparison.Ordinal);
    }
}
