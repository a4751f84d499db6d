using Segmentation.Core.Profiles;

namespace Segmentation.Core.Tests.Support;

/// <summary>A profile store that passes every call to another: tests override the calls they watch or reorder.</summary>
internal class DelegatingProfileStore(IProfileStore inner) : IProfileStore
{
    /// <summary>The store every call goes to.</summary>
    protected IProfileStore Inner { get; } = inner;

    public long Version => Inner.Version;

    public int Count => Inner.Count;

    public virtual Profile? Get(string key) => Inner.Get(key);

    public ProfileUpdate Update(string key, Func<Profile, long, Profile> mutate, long atVersion = 0) => Inner.Update(key, mutate, atVersion);

    public ProfileUpdate Merge(string fromKey, string intoKey, Func<Profile, Profile?, long, Profile> merge, long atVersion = 0, int maxLinkedIds = int.MaxValue, bool onlyUnlinkedSource = false) => Inner.Merge(fromKey, intoKey, merge, atVersion, maxLinkedIds, onlyUnlinkedSource);

    public void RaiseVersion(long version) => Inner.RaiseVersion(version);

    public ProfileRemoval Remove(string key, Action<string, Profile?, IReadOnlyList<string>>? beforeRemove = null) => Inner.Remove(key, beforeRemove);

    public string Resolve(string key) => Inner.Resolve(key);

    public IReadOnlyList<string> LinkedIds(string key) => Inner.LinkedIds(key);

    public (Profile? Profile, IReadOnlyList<string> LinkedIds) Capture(string key) => Inner.Capture(key);

    public void Restore(Profile profile) => Inner.Restore(profile);

    public void RestoreLinks(string key, IReadOnlyList<string> aliases) => Inner.RestoreLinks(key, aliases);

    public IEnumerable<Profile> Snapshot() => Inner.Snapshot();

    public virtual IEnumerable<string> Keys() => Inner.Keys();

    public MergeRecording RecordMerges() => Inner.RecordMerges();

    public StoreCapture BeginCapture() => Inner.BeginCapture();
}
