namespace Segmentation.Core.Catalog;

/// <summary>
/// Holds the active <see cref="CatalogSnapshot"/>. Publishing swaps one reference: a request keeps
/// the snapshot it started with, and a candidate that fails to load never replaces the good one.
/// </summary>
public sealed class CatalogProvider
{
    private readonly TimeProvider _time;
    private readonly Lock _publishGate = new();
    private volatile CatalogSnapshot? _current;
    private long _version;

    /// <summary>Creates an empty provider; call <see cref="Publish"/> or <see cref="Load"/> before use.</summary>
    public CatalogProvider(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>The active snapshot.</summary>
    public CatalogSnapshot Current => _current ?? throw new InvalidOperationException("no catalog has been published yet");

    /// <summary>Loads a catalog from <paramref name="source"/> and publishes it. Throws <see cref="CatalogException"/> and keeps the current catalog on error.</summary>
    public CatalogSnapshot Load(ICatalogSource source) => Publish(CatalogLoader.Load(source));

    /// <summary>Publishes a compiled snapshot with the next version.</summary>
    public CatalogSnapshot Publish(CatalogSnapshot snapshot)
    {
        lock (_publishGate)
        {
            _current = snapshot.Publish(++_version, _time.GetUtcNow());
            return _current;
        }
    }
}
