using System.Security.Cryptography;

namespace Segmentation.Storage;

/// <summary>
/// Encrypts the values of PII attributes (declared <c>pii: true</c> in the catalog schema) before they
/// are written to the change log or a snapshot, with AES-256-GCM under a key from configuration. Each
/// sealed value is <c>[12-byte random nonce][16-byte tag][ciphertext]</c>, authenticated together with
/// the attribute's name so a value cannot be moved to another attribute. Names, layers, sources and
/// times stay readable; user ids are pseudonymous keys and are not encrypted. An attribute once sealed stays sealed: a
/// name the schema declared PII while this process ran, or whose value was read sealed (restored from the files), is
/// sealed from then on, whatever the serving catalog says — a rollback to a catalog without the declaration would
/// otherwise write every stored value of it in clear at the next snapshot.
/// </summary>
public sealed class PiiProtector
{
    /// <summary>Key length in bytes (AES-256).</summary>
    public const int KeySize = 32;

    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly byte[] _key;
    private readonly Func<string, bool> _isPii;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _sealed = new(StringComparer.Ordinal); // names sealed for good

    /// <summary>Creates the protector.</summary>
    /// <param name="key">The 32-byte key.</param>
    /// <param name="isPii">Whether an attribute name is PII (usually: the current catalog schema says so).</param>
    public PiiProtector(ReadOnlySpan<byte> key, Func<string, bool> isPii)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"the PII encryption key must be {KeySize} bytes (got {key.Length})", nameof(key));
        }

        _key = key.ToArray();
        _isPii = isPii ?? throw new ArgumentNullException(nameof(isPii));
    }

    /// <summary>Parses a base64 key (as kept in configuration) into a protector.</summary>
    /// <exception cref="FormatException">The text is not base64 of 32 bytes.</exception>
    public static PiiProtector FromBase64(string key, Func<string, bool> isPii)
    {
        var bytes = Convert.FromBase64String(key.Trim());
        if (bytes.Length != KeySize)
        {
            throw new FormatException($"the PII encryption key must be base64 of {KeySize} bytes (got {bytes.Length} bytes); generate one with: openssl rand -base64 32");
        }

        return new PiiProtector(bytes, isPii);
    }

    /// <summary>
    /// A check value of the key (base64 of the first 16 bytes of HMAC-SHA256 over a fixed text): recorded
    /// when a data directory is created and compared at every start, so a wrong key is noticed before any
    /// personal data is written with it. It reveals nothing about the key.
    /// </summary>
    public string KeyCheck() =>
        Convert.ToBase64String(HMACSHA256.HashData(_key, "segmentation store key check v1"u8)[..16]);

    /// <summary>True when values of attribute <paramref name="name"/> are sealed: declared PII now, or ever since this process started, or read sealed.</summary>
    public bool IsPii(string name)
    {
        if (_sealed.ContainsKey(name))
        {
            return true;
        }

        if (!_isPii(name))
        {
            return false;
        }

        _sealed.TryAdd(name, true); // bounded: names the schema declared PII
        return true;
    }

    /// <summary>Encrypts <paramref name="plaintext"/>, bound to <paramref name="name"/>.</summary>
    public byte[] Seal(string name, ReadOnlySpan<byte> plaintext)
    {
        var result = new byte[NonceSize + TagSize + plaintext.Length];
        var nonce = result.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plaintext, result.AsSpan(NonceSize + TagSize), result.AsSpan(NonceSize, TagSize), System.Text.Encoding.UTF8.GetBytes(name));
        return result;
    }

    /// <summary>Decrypts a value sealed by <see cref="Seal"/> for the same <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">Wrong key, wrong name or damaged data.</exception>
    public byte[] Open(string name, ReadOnlySpan<byte> sealedValue)
    {
        _sealed.TryAdd(name, true); // written sealed: stays sealed (bounded: names once declared PII)
        if (sealedValue.Length < NonceSize + TagSize)
        {
            throw new InvalidDataException($"sealed value of attribute '{name}' is too short");
        }

        var plaintext = new byte[sealedValue.Length - NonceSize - TagSize];
        try
        {
            using var aes = new AesGcm(_key, TagSize);
            aes.Decrypt(sealedValue[..NonceSize], sealedValue[(NonceSize + TagSize)..], sealedValue.Slice(NonceSize, TagSize), plaintext, System.Text.Encoding.UTF8.GetBytes(name));
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new InvalidDataException($"sealed value of attribute '{name}' cannot be decrypted: wrong key (Segmentation:EncryptionKey) or damaged data", ex);
        }

        return plaintext;
    }
}
