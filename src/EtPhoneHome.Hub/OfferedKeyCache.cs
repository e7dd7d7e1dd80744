using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Operations;
namespace EtPhoneHome.Hub;

/// <summary>
/// Bounded memory of public keys sshd has seen offered (fingerprint → "type base64"). Offered keys are not
/// proven yet, so they are never persisted from here; the oldest entries fall out first.
/// </summary>
internal sealed class OfferedKeyCache(int capacity)
{
    private readonly object _lock = new();
    private readonly Dictionary<string, string> _keys = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _keys.Count;
            }
        }
    }

    public void Remember(string fingerprint, string publicKey)
    {
        lock (_lock)
        {
            if (_keys.ContainsKey(fingerprint))
            {
                _keys[fingerprint] = publicKey;
                return;
            }

            while (_keys.Count >= capacity && _order.TryDequeue(out var oldest))
            {
                _keys.Remove(oldest);
            }

            _keys[fingerprint] = publicKey;
            _order.Enqueue(fingerprint);
        }
    }

    public string? Get(string fingerprint)
    {
        lock (_lock)
        {
            return _keys.TryGetValue(fingerprint, out var key) ? key : null;
        }
    }
}
