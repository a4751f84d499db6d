namespace Segmentation.Core.Profiles;

/// <summary>
/// The ids of a run of events as UTF-8 bytes in someone else's buffer (a snapshot chunk being restored), one per
/// event in order, so that building the events' log does not decode each id into a string only to encode it back;
/// optionally their session ids too (<see cref="HasSessions"/>), which the log likewise keeps as bytes.
/// Reused from one profile to the next; holds positions, never a copy of the ids.
/// </summary>
internal sealed class Utf8EventIds
{
    private byte[] _buffer = [];
    private int[] _starts = new int[64];
    private int[] _lengths = new int[64];
    private int[] _sessionStarts = [];
    private int[] _sessionLengths = [];

    /// <summary>The ids added since the last <see cref="Reset"/>.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// True when every event's session id was given as bytes too (the events' own <see cref="StoredEvent.SessionId"/>
    /// is then a placeholder).
    /// </summary>
    public bool HasSessions { get; private set; }

    /// <summary>The bytes of the id of event <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> this[int index] => _buffer.AsSpan(_starts[index], _lengths[index]);

    /// <summary>Starts a new run of ids, all in <paramref name="buffer"/>; with <paramref name="sessions"/>, each comes with its session id.</summary>
    public void Reset(byte[] buffer, bool sessions = false)
    {
        _buffer = buffer;
        Count = 0;
        HasSessions = sessions;
        if (sessions && _sessionStarts.Length < _starts.Length)
        {
            _sessionStarts = new int[_starts.Length];
            _sessionLengths = new int[_starts.Length];
        }
    }

    /// <summary>Adds the next event's id: <paramref name="length"/> bytes at <paramref name="start"/> of the buffer.</summary>
    public void Add(int start, int length)
    {
        if (HasSessions)
        {
            throw new InvalidOperationException("this run gives each event's session id too");
        }

        Grow();
        _starts[Count] = start;
        _lengths[Count] = length;
        Count++;
    }

    /// <summary>Adds the next event's id and its session id, each given by where its bytes start in the buffer and their length.</summary>
    public void Add(int start, int length, int sessionStart, int sessionLength)
    {
        if (!HasSessions)
        {
            throw new InvalidOperationException("this run was started without session ids");
        }

        Grow();
        _starts[Count] = start;
        _lengths[Count] = length;
        _sessionStarts[Count] = sessionStart;
        _sessionLengths[Count] = sessionLength;
        Count++;
    }

    /// <summary>The bytes of the session id of event <paramref name="index"/> (only when <see cref="HasSessions"/>).</summary>
    public ReadOnlySpan<byte> SessionAt(int index) => _buffer.AsSpan(_sessionStarts[index], _sessionLengths[index]);

    /// <summary>The id of event <paramref name="index"/> as a string (for the rare path that needs one).</summary>
    public string StringAt(int index) => System.Text.Encoding.UTF8.GetString(this[index]);

    private void Grow()
    {
        if (Count < _starts.Length)
        {
            return;
        }

        Array.Resize(ref _starts, Count * 2);
        Array.Resize(ref _lengths, Count * 2);
        if (HasSessions)
        {
            Array.Resize(ref _sessionStarts, Count * 2);
            Array.Resize(ref _sessionLengths, Count * 2);
        }
    }
}
