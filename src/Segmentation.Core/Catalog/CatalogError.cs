namespace Segmentation.Core.Catalog;

/// <summary>A problem found while loading a catalog: file, line, segment and clause, and what is wrong.</summary>
public sealed record CatalogError(string File, int Line, string? Segment, string? Clause, string Message)
{
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
    /// <summary>Creates the exception from the catalog's errors.</summary>
    public CatalogException(IReadOnlyList<CatalogError> errors)
        : base($"catalog has {errors.Count} error(s):{Environment.NewLine}" + string.Join(Environment.NewLine, errors)) => Errors = errors;

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
