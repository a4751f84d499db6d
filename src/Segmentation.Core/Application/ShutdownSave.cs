namespace Segmentation.Core.Application;

/// <summary>
/// The save a hosted service makes when the host stops it, made once. A host may stop its services more than once —
/// the ASP.NET Core test host does: its own dispose stops the host while the application's run loop, woken by the
/// stopping signal, stops it again — and the later stop must neither return before the save it raced with is written
/// (its caller would then free the data directory under a write still running) nor write the same state again after
/// the host reported itself stopped. The first stop saves; a stop arriving meanwhile waits for that save; a stop
/// after it returns at once, also when the first stop's save threw (production stops once, so a retry would only ever
/// write after the host said it had stopped).
/// </summary>
public sealed class ShutdownSave
{
    private readonly Lock _gate = new();
    private bool _saved;

    /// <summary>Runs <paramref name="save"/> unless a stop has already; returns whether this call ran it.</summary>
    public bool Run(Action save)
    {
        ArgumentNullException.ThrowIfNull(save);
        lock (_gate)
        {
            if (_saved)
            {
                return false;
            }

            try
            {
                save();
            }
            finally
            {
                _saved = true; // also when it threw: a later stop writing after the first returned is what this prevents
            }

            return true;
        }
    }
}
