namespace Segmentation.Core.Validation;

/// <summary>
/// Lets the same kind of log entry (by a key) through at most a few times a minute, counting the rest, so a
/// caller (or a disk) that keeps triggering one error cannot flood the log. Keys are bounded by the caller (a type and
/// a method, a variant id, a job): one window each.
/// </summary>
public sealed class RepeatedLogLimit(int perMinute)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(System.Type, string), Window> _windows = new();

    /// <summary>True when an entry for (<paramref name="type"/>, <paramref name="where"/>) may be logged now; <paramref name="suppressed"/> counts those held back since the last one logged.</summary>
    public bool ShouldLog(System.Type type, string where, out int suppressed)
    {
        var now = Environment.TickCount64;
        if (!_windows.TryGetValue((type, where), out var window))
        {
            if (_windows.Count >= MaxKeys)
            {
                Sweep(now); // keys come and go (variant ids across catalog versions): windows over a minute old are forgotten
            }

            window = _windows.GetOrAdd((type, where), static _ => new Window());
        }

        lock (window)
        {
            if (now - window.Start >= 60_000)
            {
                (window.Start, window.Logged) = (now, 0);
            }

            if (window.Logged < perMinute)
            {
                window.Logged++;
                suppressed = window.Suppressed;
                window.Suppressed = 0;
                return true;
            }

            window.Suppressed++;
            suppressed = 0;
            return false;
        }
    }

    // Windows kept before the old ones are swept.
    private const int MaxKeys = 1024;

    private void Sweep(long now)
    {
        foreach (var (key, old) in _windows)
        {
            if (now - Volatile.Read(ref old.Start) >= 60_000)
            {
                _windows.TryRemove(key, out _);
            }
        }
    }

    private sealed class Window
    {
        public long Start = Environment.TickCount64; // a field: the sweep reads it without the window's lock

        public int Logged { get; set; }

        public int Suppressed { get; set; }
    }
}
