namespace Segmentation.Core.Experiments;

/// <summary>
/// The arms users were already given, read by a decision: a user who has one keeps it, whatever the weights say now.
/// Implementations answer from memory without blocking (a decision must never wait for it).
/// </summary>
public interface IRecordedAssignments
{
    /// <summary>The arm id recorded for <paramref name="subjectId"/> in <paramref name="experimentId"/>, or null.</summary>
    string? RecordedArm(string experimentId, string subjectId);

    /// <summary>True when <paramref name="subjectId"/> has an arm recorded in <paramref name="experimentId"/>, whatever the weights.</summary>
    bool IsRecorded(string experimentId, string subjectId);
}
