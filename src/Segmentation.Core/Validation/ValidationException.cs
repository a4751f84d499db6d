namespace Segmentation.Core.Validation;

/// <summary>One invalid field of a request: its path (e.g. <c>event.context.session_id</c>) and why.</summary>
public sealed record FieldViolation(string Field, string Description);

/// <summary>
/// Thrown by the domain when input is invalid. The host maps it to INVALID_ARGUMENT with
/// <c>google.rpc.BadRequest</c> field violations. Nothing is stored when it is thrown.
/// </summary>
public sealed class ValidationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ValidationException(IReadOnlyList<FieldViolation> violations)
        : base(Describe(violations)) => Violations = violations;

    /// <summary>Creates the exception.</summary>
    public ValidationException(string field, string description)
        : this([new FieldViolation(field, description)])
    {
    }

    /// <summary>Creates the exception.</summary>
    public ValidationException()
        : this([])
    {
    }

    /// <summary>Creates the exception.</summary>
    public ValidationException(string message)
        : base(message) => Violations = [];

    /// <summary>Creates the exception.</summary>
    public ValidationException(string message, Exception innerException)
        : base(message, innerException) => Violations = [];

    /// <summary>The invalid fields.</summary>
    public IReadOnlyList<FieldViolation> Violations { get; }

    /// <summary>Violations found besides <see cref="Violations"/>, counted but not listed (a catalog's errors past the most kept).</summary>
    public int Unlisted { get; init; }

    /// <summary>
    /// True when the input is refused because it is older than the retention policy allows to be kept: whoever holds it
    /// (a dead-letter queue) should not keep it either.
    /// </summary>
    public bool PastRetention { get; init; }

    /// <summary>How many violations the message names; the rest are counted.</summary>
    public const int DescribedViolations = 3;

    private static string Describe(IReadOnlyList<FieldViolation> violations) =>
        violations.Count == 0 ? "invalid request"
        : string.Join("; ", violations.Take(DescribedViolations).Select(v => $"{v.Field}: {v.Description}"))
            + (violations.Count > DescribedViolations ? $" (and {violations.Count - DescribedViolations} more)" : "");
}

/// <summary>Thrown when a requested entity (e.g. a profile) does not exist. Mapped to NOT_FOUND.</summary>
public sealed class NotFoundException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NotFoundException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public NotFoundException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public NotFoundException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Collects field violations and throws them together. Field names are prefixed (e.g. with
/// <c>event</c>) only when a violation is recorded, so valid input costs no string building.
/// </summary>
public sealed class ViolationList(string? prefix = null)
{
    private List<FieldViolation>? _items;

    /// <summary>True when no violation was added.</summary>
    public bool IsEmpty => _items is null;

    /// <summary>Adds a violation.</summary>
    public void Add(string field, string description) =>
        (_items ??= []).Add(new FieldViolation(prefix is null ? field : $"{prefix}.{field}", description));

    /// <summary>Requires a non-empty string of at most <paramref name="max"/> characters.</summary>
    public void Required(string field, string? value, int max)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            Add(field, "is required");
        }
        else
        {
            MaxLength(field, value, max);
        }
    }

    /// <summary>Requires a non-empty id (user, anonymous or session) of at most <see cref="InputLimits.MaxIdLength"/> characters.</summary>
    public void RequiredId(string field, string? value) => Required(field, value, InputLimits.MaxIdLength);

    /// <summary>Checks an optional id: empty, or not blank (only white space) and at most <see cref="InputLimits.MaxIdLength"/> characters.</summary>
    public void OptionalId(string field, string? value)
    {
        if (!string.IsNullOrEmpty(value) && string.IsNullOrWhiteSpace(value))
        {
            Add(field, "must not be blank (only white space)");
        }
        else
        {
            MaxLength(field, value, InputLimits.MaxIdLength);
        }
    }

    /// <summary>Checks an optional string's length.</summary>
    public void MaxLength(string field, string? value, int max)
    {
        if (value is not null && value.Length > max)
        {
            Add(field, $"must be at most {max} characters (got {value.Length})");
        }
    }

    /// <summary>Throws a <see cref="ValidationException"/> when any violation was added.</summary>
    public void ThrowIfAny()
    {
        if (_items is not null)
        {
            throw new ValidationException(_items.ToArray());
        }
    }
}

/// <summary>A request would take a stored thing past a documented limit (such as the events one profile may hold). Mapped to RESOURCE_EXHAUSTED.</summary>
public sealed class LimitExceededException : Exception
{
    /// <summary>Creates the exception.</summary>
    public LimitExceededException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public LimitExceededException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public LimitExceededException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Thrown when what a call reads is not ready yet but will be shortly (the segment membership index while it
/// is rebuilt after a restart). Mapped to UNAVAILABLE with a retry delay: the call may be sent again as is.
/// </summary>
public sealed class NotReadyException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NotReadyException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public NotReadyException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public NotReadyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with the delay after which a retry is worth it.</summary>
    public NotReadyException(string message, TimeSpan retryAfter)
        : base(message) => RetryAfter = retryAfter;

    /// <summary>When a retry is worth it.</summary>
    public TimeSpan RetryAfter { get; } = TimeSpan.FromSeconds(1);
}

/// <summary>Thrown when a request is valid but the system is not in a state to carry it out (promoting an experiment without a winner). Mapped to FAILED_PRECONDITION.</summary>
public sealed class PreconditionFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PreconditionFailedException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public PreconditionFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public PreconditionFailedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// Thrown when an edit was made on a version of something that changed before it could be applied (two experiment
/// edits at once). Nothing was applied; reading again and retrying is safe. Mapped to ABORTED.
/// </summary>
public sealed class ConcurrencyConflictException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConcurrencyConflictException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ConcurrencyConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ConcurrencyConflictException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
