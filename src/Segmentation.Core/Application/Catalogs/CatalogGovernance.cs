using System.Runtime.CompilerServices;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Catalog;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>The outcome of validating a candidate catalog: its errors, or (when valid) the audit's warnings against the current profiles.</summary>
/// <param name="Errors">Every error; empty when the candidate is valid.</param>
/// <param name="Warnings">The audit's warnings, when valid.</param>
public sealed record CatalogValidation(IReadOnlyList<CatalogError> Errors, IReadOnlyList<CatalogWarning> Warnings)
{
    /// <summary>True when the candidate has no error.</summary>
    public bool Valid => Errors.Count == 0;
}

/// <summary>A published catalog and the audit's warnings about it.</summary>
public sealed record PublishedCatalog(CatalogSnapshot Catalog, IReadOnlyList<CatalogWarning> Warnings);

/// <summary>A rollback: the new version and the version whose files it republished.</summary>
public sealed record RolledBackCatalog(CatalogSnapshot Catalog, long RestoredFrom);

/// <summary>One segment's current membership count and share of the population.</summary>
public sealed record SegmentCount(Segment Segment, int Members, double Share);

/// <summary>The current catalog's segments with their counts.</summary>
public sealed record SegmentCounts(long CatalogVersion, int Population, IReadOnlyList<SegmentCount> Segments);

/// <summary>One page of a segment's members, in id order, with the token of the next page ("" on the last).</summary>
public sealed record MembersPage(IReadOnlyList<string> UserIds, int Total, string NextPageToken);

/// <summary>The outcome of previewing a candidate segment: the preview, or the candidate's errors.</summary>
public sealed record PreviewOutcome(SegmentPreview? Preview, IReadOnlyList<CatalogError> Errors);

/// <summary>
/// Catalog governance, the use cases of the catalog's owners: validate a candidate against the current
/// profiles, publish, roll back, audit, preview one segment, count and page through members, and watch
/// membership changes. Audits and previews see users without personalization consent as empty profiles,
/// as membership does. Request bounds and defaults (files, page sizes, sample sizes) live here, so every
/// adapter applies the same ones.
/// </summary>
public sealed class CatalogGovernance(CatalogProvider catalogs, IProfileStore store, RfmModelProvider rfm, MembershipIndex memberships, TimeProvider time, ConsentPolicy consent)
{
    /// <summary>Most files one catalog may have.</summary>
    public const int MaxFiles = 200;

    /// <summary>Largest catalog file (and candidate segment), in characters.</summary>
    public const int MaxFileLength = 1 << 20;

    /// <summary>Longest file name.</summary>
    public const int MaxFileNameLength = 256;

    /// <summary>Members per page when the caller gives no size.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>Most members per page.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Sample members of a preview when the caller gives no size.</summary>
    public const int DefaultSampleSize = 10;

    /// <summary>Most sample members of a preview.</summary>
    public const int MaxSampleSize = 100;

    /// <summary>Entries a watcher reads from the change stream at a time.</summary>
    public const int WatchBatch = 256;

    /// <summary>The active catalog.</summary>
    public CatalogSnapshot Current => catalogs.Current;

    /// <summary>Published versions, newest first.</summary>
    public IReadOnlyList<CatalogVersionInfo> History => catalogs.History;

    /// <summary>Validates candidate files without publishing them; a valid candidate is audited against the current profiles.</summary>
    public CatalogValidation Validate(IReadOnlyList<CatalogFile> files, AuditOptions? options, CancellationToken cancellation = default)
    {
        var source = Source(files, "validate");
        try
        {
            var candidate = CatalogLoader.Load(source, cancellation);
            return new CatalogValidation([], Audit(candidate, options, cancellation).Warnings);
        }
        catch (CatalogException ex)
        {
            return new CatalogValidation(ex.Errors, []);
        }
    }

    /// <summary>
    /// Publishes candidate files as the next version. Throws <see cref="ValidationException"/> with one
    /// violation per catalog error (the current catalog stays).
    /// </summary>
    public PublishedCatalog Publish(IReadOnlyList<CatalogFile> files, string comment, CancellationToken cancellation = default) =>
        Publish(files, comment, null, cancellation);

    /// <summary>
    /// As <see cref="Publish(IReadOnlyList{CatalogFile}, string, CancellationToken)"/>, only if the current version is
    /// still <paramref name="basedOn"/> (else <see cref="ConcurrencyConflictException"/>, nothing published).
    /// </summary>
    public PublishedCatalog Publish(IReadOnlyList<CatalogFile> files, string comment, long? basedOn, CancellationToken cancellation = default)
    {
        var violations = new ViolationList();
        violations.MaxLength("comment", comment, InputLimits.MaxCommentLength);
        if (basedOn < 0)
        {
            violations.Add("based_on_version", $"must be a version number, or 0 to publish on whatever is active (got {basedOn})"); // no version ever had it: a retry could never succeed
        }

        violations.ThrowIfAny();

        CatalogSnapshot published;
        try
        {
            published = catalogs.Load(Source(files, "api"), comment, basedOn, cancellation);
        }
        catch (CatalogException ex)
        {
            // The errors kept, without the one that counts the rest: the count travels as a number, added to the host's own.
            var listed = ex.Errors.Take(Math.Min(ex.Errors.Count, CatalogException.MaxErrors)).ToList();
            throw new ValidationException([.. listed.Select(e => new FieldViolation($"files[{e.File}]", e.ToString()))]) { Unlisted = Math.Max(0, ex.Total - listed.Count) };
        }

        return new PublishedCatalog(published, Audit(published, null, CancellationToken.None).Warnings);
    }

    /// <summary>
    /// Republishes an earlier version's files (the one before the current when <paramref name="version"/> is
    /// null) as a new version. Throws <see cref="NotFoundException"/> when that version is not kept.
    /// </summary>
    public RolledBackCatalog Rollback(long? version)
    {
        var restored = catalogs.Rollback(version);
        var from = catalogs.History.First(h => h.Version == restored.Version).RolledBackFrom ?? 0;
        return new RolledBackCatalog(restored, from);
    }

    /// <summary>Every segment of the current catalog with its current membership count.</summary>
    public SegmentCounts Counts()
    {
        memberships.ThrowIfIncomplete();
        var c = catalogs.Current;
        var population = memberships.Users;
        var counts = new List<SegmentCount>(c.Segments.Count);
        foreach (var s in c.Segments)
        {
            var count = memberships.Count(s.Id);
            counts.Add(new SegmentCount(s, count, population == 0 ? 0 : (double)count / population));
        }

        return new SegmentCounts(c.Version, population, counts);
    }

    /// <summary>
    /// One page of <paramref name="segmentId"/>'s members after <paramref name="pageToken"/>;
    /// <paramref name="pageSize"/> 0 means <see cref="DefaultPageSize"/>. Throws <see cref="NotFoundException"/>
    /// for a segment the current catalog does not have.
    /// </summary>
    public MembersPage Members(string segmentId, string pageToken, int pageSize)
    {
        if (string.IsNullOrEmpty(segmentId))
        {
            throw new ValidationException("segment_id", "a segment id is required");
        }

        if (!catalogs.Current.ById.ContainsKey(segmentId))
        {
            throw new NotFoundException($"unknown segment '{Shorten(segmentId)}'");
        }

        if (pageSize is < 0 or > MaxPageSize)
        {
            throw new ValidationException("page_size", $"must be between 1 and {MaxPageSize} (0 means {DefaultPageSize})");
        }

        memberships.ThrowIfIncomplete();
        var size = pageSize == 0 ? DefaultPageSize : pageSize;
        var page = memberships.Members(segmentId, pageToken, size + 1);
        return new MembersPage([.. page.Take(size)], memberships.Count(segmentId), page.Count > size ? page[size - 1] : "");
    }

    /// <summary>
    /// Previews a candidate segment (written as in a catalog file) against the current catalog and profiles;
    /// <paramref name="sampleSize"/> 0 means <see cref="DefaultSampleSize"/>, at most <see cref="MaxSampleSize"/>.
    /// </summary>
    public PreviewOutcome Preview(string segmentYaml, int sampleSize, CancellationToken cancellation = default)
    {
        var v = new ViolationList();
        if (string.IsNullOrWhiteSpace(segmentYaml) || segmentYaml.Length > MaxFileLength)
        {
            v.Add("segment_yaml", "a segment definition of at most 1 MiB is required");
        }

        if (sampleSize is < 0 or > MaxSampleSize)
        {
            v.Add("sample_size", $"must be between 1 and {MaxSampleSize} (0 means {DefaultSampleSize})");
        }

        v.ThrowIfAny();
        try
        {
            var sample = sampleSize == 0 ? DefaultSampleSize : sampleSize;
            return new PreviewOutcome(CatalogAudit.Preview(catalogs.Current, segmentYaml, Profiles(), rfm.Current, time.GetUtcNow(), sampleSize: sample, cancellation: cancellation), []);
        }
        catch (CatalogException ex)
        {
            return new PreviewOutcome(null, ex.Errors);
        }
    }

    /// <summary>Audits <paramref name="catalog"/> (usually <see cref="Current"/>, read once by the caller) against the current profiles.</summary>
    /// <remarks>While the membership index is rebuilt after a restart, the warnings that read it (staleness) are left out.</remarks>
    public AuditReport Audit(CatalogSnapshot catalog, AuditOptions? options, CancellationToken cancellation = default) =>
        CatalogAudit.Run(catalog, Profiles(), rfm.Current, time.GetUtcNow(), options ?? new AuditOptions(), memberships.IsComplete ? memberships : null, cancellation);

    /// <summary>The change stream's identity (<see cref="ChangeFeed.StreamId"/>).</summary>
    public string StreamId => memberships.Feed.StreamId;

    /// <summary>The longest stream id a watch may name (the service's are 32 characters).</summary>
    public const int MaxStreamIdLength = 64;

    /// <summary>
    /// The change stream (membership changes and fired triggers) of <paramref name="segmentIds"/> (all segments
    /// when empty), until <paramref name="cancellation"/>: the entries after offset <paramref name="after"/> first
    /// (with <paramref name="fromOldest"/>, every entry still retained; neither: only what happens from now on), then
    /// each as it is appended. A consumer keeps the offset of the last
    /// entry it handled and passes it back when it reconnects; entries it missed within the retention window come
    /// first, in offset order. Throws <see cref="FeedOffsetException"/> when the entries it needs are no longer
    /// retained (or the offset is past the stream's end), before anything is returned or as soon as the consumer
    /// falls that far behind. Fired triggers are left out unless <paramref name="includeTriggers"/>. With a
    /// <paramref name="streamId"/> (the stream the consumer's offset is from) that is not this stream's, the same
    /// exception: the stream was reset, and its offsets are not the consumer's.
    /// </summary>
    public async IAsyncEnumerable<FeedEntry> Watch(IReadOnlyList<string> segmentIds, long? after, bool includeTriggers = true, bool fromOldest = false, string? streamId = null, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        if (after < 0)
        {
            throw new ValidationException("after_offset", $"an offset is 0 or more (got {after})");
        }

        if (fromOldest && after is not null)
        {
            throw new ValidationException("from_oldest", "either an offset to resume after or from the oldest entry, not both");
        }

        if (streamId?.Length > MaxStreamIdLength)
        {
            throw new ValidationException("stream_id", $"a stream id is at most {MaxStreamIdLength} characters (got {streamId.Length})");
        }

        var filter = MembershipIndex.Filter(segmentIds);
        var feed = memberships.Feed;
        if (!string.IsNullOrEmpty(streamId) && streamId != feed.StreamId)
        {
            // An offset means something only in its own stream: this one started again (another server or data directory,
            // or a server without one restarted), and may already be past the consumer's offset with other entries.
            throw new FeedOffsetException($"the offset is from stream {streamId}, and this is stream {feed.StreamId} (the stream was reset): resynchronise from the current memberships and continue from the newest offset", feed.Oldest, feed.Last);
        }

        memberships.ThrowIfIncomplete(); // after the request's own mistakes, which no retry mends: restored members are not entries, and entries of users not yet re-evaluated would be missed

        // From the oldest: until the first entry is read, what is oldest moves as entries expire.
        var cursor = fromOldest ? 0 : after ?? feed.Last;
        var batch = new List<FeedEntry>(WatchBatch);
        while (true)
        {
            batch.Clear();
            var redactions = feed.Redactions;
            if (feed.ReadAfter(cursor, batch, WatchBatch, fromOldest) == 0)
            {
                if (fromOldest)
                {
                    cursor = Math.Max(cursor, feed.Oldest - 1); // nothing retained yet: wait for what comes after the end
                }

                await feed.WaitAfterAsync(cursor, cancellation).ConfigureAwait(false);
                continue;
            }

            AfterWatchRead?.Invoke();
            foreach (var entry in batch)
            {
                if (feed.Redactions != redactions)
                {
                    break; // a user was erased while this batch waited for the consumer: the rest is read again, blanked
                }

                cursor = entry.Offset;
                fromOldest = false; // from the oldest until an entry was passed: a batch read again before it starts there again
                if ((filter is null || filter.Contains(entry.SegmentId)) && (includeTriggers || entry.Kind != ChangeKind.Triggered))
                {
                    yield return entry;
                }
            }
        }
    }

    /// <summary>Test hook: runs after a watch read a batch, before it hands any of it on.</summary>
    internal Action? AfterWatchRead { get; set; }

    private IEnumerable<Profile> Profiles() => store.Snapshot().Select(consent.GatedView);

    private static InMemoryCatalogSource Source(IReadOnlyList<CatalogFile> files, string origin)
    {
        var v = new ViolationList();
        if (files.Count is 0 or > MaxFiles)
        {
            v.Add("files", $"between 1 and {MaxFiles} files are required (got {files.Count})");
        }

        for (var i = 0; i < files.Count; i++)
        {
            v.Required($"files[{i}].name", files[i].Name, MaxFileNameLength);
            if (files[i].Text.Length > MaxFileLength)
            {
                v.Add($"files[{i}].content", "must be at most 1 MiB");
            }
        }

        if (files.Select(f => f.Name).Distinct(StringComparer.Ordinal).Count() != files.Count)
        {
            v.Add("files", "file names must be unique");
        }

        v.ThrowIfAny();
        return new InMemoryCatalogSource(files, origin);
    }

    private static string Shorten(string id) => id.Length > 64 ? id[..64] + "…" : id;
}
