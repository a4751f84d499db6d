namespace Segmentation.Core.Catalog;

/// <summary>A problem found while loading a catalog: file, line, segment and clause, and what is wrong.</summary>
public sealed record CatalogError(string File, int Line, string? Segment, string? Clause, string Message)
{
    /// <summary>Longest message kept: a message may quote the file's text, which may be long (an alias repeats it).</summary>
    public const int MaxMessageLength = 1_000;

    /// <summary>What is wrong (at most <see cref="MaxMessageLength"/> characters).</summary>
    public string Message { get; init; } = Validation.InputLimits.Bounded(Message, MaxMessageLength);

    /// <summary>The segment's id as written (at most 128 characters).</summary>
    public string? Segment { get; init; } = Segment is null ? null : Validation.InputLimits.Bounded(Segment, 128);

    /// <summary>The column in the line (1-based), 0 when not known.</summary>
    public int Column { get; init; }

    /// <inheritdoc />
    public override string ToString()
    {
        var where = Column > 0 ? $"{File}:{Line}:{Column}" : $"{File}:{Line}";
        if (Segment is not null)
        {
            where += $" segment '{Segment}'";
        }

        if (Clause is not null)
        {
            where += $" at {Clause}";
        }

        return $"{where}: {Message}";
    }
}

/// <summary>Thrown when a catalog has errors. Nothing of it is published.</summary>
public sealed class CatalogException : Exception
{
    /// <summary>Most errors kept; past them one more error says how many were left out.</summary>
    public const int MaxErrors = 200;

    /// <summary>Creates the exception from the catalog's errors (the first <see cref="MaxErrors"/>, and how many more).</summary>
    public CatalogException(IReadOnlyList<CatalogError> errors)
        : this(Kept(errors ?? throw new ArgumentNullException(nameof(errors))), errors.Count)
    {
    }

    private CatalogException(IReadOnlyList<CatalogError> kept, int total)
        : base($"catalog has {total} error(s):{Environment.NewLine}" + string.Join(Environment.NewLine, kept)) => (Errors, Total) = (kept, total);

    /// <summary>How many errors the catalog has: past <see cref="MaxErrors"/>, more than <see cref="Errors"/> lists.</summary>
    public int Total { get; }

    private static IReadOnlyList<CatalogError> Kept(IReadOnlyList<CatalogError> errors) =>
        errors.Count <= MaxErrors ? errors
            : [.. errors.Take(MaxErrors), new CatalogError(errors[MaxErrors].File, errors[MaxErrors].Line, null, null, $"{errors.Count - MaxErrors:N0} more errors not listed; fix these first")];

    /// <summary>Creates the exception.</summary>
    public CatalogException()
        : this([])
    {
    }

    /// <summary>Creates the exception.</summary>
    public CatalogException(string message)
        : base(message) => Errors = [];

    /// <summary>Creates the exception.</summary>
    public CatalogException(string message, Exception innerException)
        : base(message, innerException) => Errors = [];

    /// <summary>Every error found.</summary>
    public IReadOnlyList<CatalogError> Errors { get; }
}
