namespace Segmentation.Core.Profiles;

/// <summary>
/// The ids and session ids of a run of events as UTF-8 bytes in someone else's buffer (a snapshot chunk being
/// restored), one pair per event in order, so that building the events' log does not decode each into a string only
/// to encode it back (the events' own <see cref="StoredEvent.EventId"/> and <see cref="StoredEvent.SessionId"/> are
/// then placeholders). Reused from one profile to the next; holds positions, never a copy of the ids.
/// </summary>
internal sealed class Utf8EventIds
{
    private byte[] _buffer = [];
    private int[] _starts = new int[64];
    private int[] _lengths = new int[64];
    private int[] _sessionStarts = new int[64];
    private int[] _sessionLengths = new int[64];

    /// <summary>The events added since the last <see cref="Reset"/>.</summary>
    public int Count { get; private set; }

    /// <summary>The bytes of the id of event <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> this[int index] => _buffer.AsSpan(_starts[index], _lengths[index]);

    /// <summary>Starts a new run, all in <paramref name="buffer"/>.</summary>
    public void Reset(byte[] buffer)
    {
        _buffer = buffer;
        Count = 0;
    }

    /// <summary>Adds the next event's id and session id, each given by where its bytes start in the buffer and their length.</summary>
    public void Add(int start, int length, int sessionStart, int sessionLength)
    {
        if (Count == _starts.Length)
        {
            Array.Resize(ref _starts, Count * 2);
            Array.Resize(ref _lengths, Count * 2);
            Array.Resize(ref _sessionStarts, Count * 2);
            Array.Resize(ref _sessionLengths, Count * 2);
        }

        _starts[Count] = start;
        _lengths[Count] = length;
        _sessionStarts[Count] = sessionStart;
        _sessionLengths[Count] = sessionLength;
        Count++;
    }

    /// <summary>The bytes of the session id of event <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> SessionAt(int index) => _buffer.AsSpan(_sessionStarts[index], _sessionLengths[index]);

    /// <summary>The id of event <paramref name="index"/> as a string (for the rare path that needs one).</summary>
    public string StringAt(int index) => System.Text.Encoding.UTF8.GetString(this[index]);

    /// <summary>The session id of event <paramref name="index"/> as a string.</summary>
    public string SessionStringAt(int index) => System.Text.Encoding.UTF8.GetString(SessionAt(index));
}
