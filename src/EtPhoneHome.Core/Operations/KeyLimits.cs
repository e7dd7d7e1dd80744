using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// The resource limits of a key, one policy for the hub, eph-server and the cmdlets: how many sessions one key may hold
/// at the hub, and how long a pending key may go unseen before it is purged.
/// </summary>
/// <remarks>
/// A pending key costs the server an sshd process per session and a registry row, and anybody who can reach sshd can
/// make keys. So a key holds few sessions, pending keys that stop coming back are purged, and when the registry's bound
/// of pending keys is reached the key unseen the longest gives way to the new one (see
/// <see cref="SqliteRegistry.MaxPendingKeys"/>): filling the table delays nobody's enrolment for longer than it takes an
/// agent to reconnect, while the table stays bounded.
/// </remarks>
public static class KeyLimits
{
    /// <summary>Sessions one unapproved key may hold at once: one waiting agent, plus its reconnect racing the old session.</summary>
    public const int DefaultMaxSessionsPerPendingKey = 2;

    /// <summary>Sessions one approved key may hold at once: its session plus reconnects racing an old one that is not yet closed.</summary>
    public const int DefaultMaxSessionsPerApprovedKey = 3;

    /// <summary>How long a pending key may go unseen before the hub purges it.</summary>
    public static TimeSpan DefaultPendingKeyMaxAge { get; } = TimeSpan.FromDays(7);

    /// <summary>What the history records as the actor of the hub's own purges.</summary>
    public const string HubActor = "eph-hub";

    /// <summary>The session limit of a key in <paramref name="status"/> (null: a key the registry has not recorded yet).</summary>
    public static int MaxSessions(KeyStatus? status, int pendingLimit = DefaultMaxSessionsPerPendingKey, int approvedLimit = DefaultMaxSessionsPerApprovedKey)
        => status == KeyStatus.Approved ? approvedLimit : pendingLimit;

    /// <summary>The pending keys unseen for longer than <paramref name="unseenFor"/>, oldest first; nothing is changed (a dry run).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="unseenFor"/> is negative.</exception>
    public static IReadOnlyList<KeyRecord> ExpiredPendingKeys(IKeyStore registry, TimeSpan unseenFor)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.PurgePendingKeys(unseenFor, KeyLimits.HubActor, Surfaces.Hub, dryRun: true);
    }

    /// <summary>
    /// Purges the pending keys unseen for longer than <paramref name="unseenFor"/> (mismatch claims included; approved and
    /// revoked keys are never touched) and records it in the history with the operator's context. Returns the keys purged.
    /// A purged key's agent that comes back is recorded as pending again.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="unseenFor"/> is negative.</exception>
    public static IReadOnlyList<KeyRecord> PurgePendingKeys(IKeyStore registry, TimeSpan unseenFor, OperatorContext context)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        return registry.PurgePendingKeys(unseenFor, context.Actor, context.Surface);
    }

    /// <summary>Longest age <see cref="ParseAge"/> accepts (100 years): past it an age is a typo, not a policy.</summary>
    public static TimeSpan MaxAge { get; } = TimeSpan.FromDays(36_500);

    /// <summary>Parses an age as the verbs take it: a whole number and a unit, s, m, h or d (90m, 12h, 7d; 0s is every key).</summary>
    /// <exception cref="FormatException">Not such an age, or longer than <see cref="MaxAge"/>.</exception>
    public static TimeSpan ParseAge(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t.Length >= 2 && t.Length <= 12
            && long.TryParse(t.AsSpan(0, t.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var amount))
        {
            double? seconds = char.ToLowerInvariant(t[^1]) switch
            {
                's' => amount,
                'm' => amount * 60.0,
                'h' => amount * 3600.0,
                'd' => amount * 86400.0,
                _ => null,
            };
            if (seconds is { } s)
            {
                if (s > MaxAge.TotalSeconds)
                {
                    throw new FormatException($"'{text}' is longer than {MaxAge.TotalDays:0}d");
                }

                return TimeSpan.FromSeconds(s);
            }
        }

        throw new FormatException($"'{text}' is not an age such as 90m, 12h or 7d");
    }

    /// <summary>An age for people, in its largest whole unit, to two decimals (7d, 1.5d, 12h, 90s).</summary>
    public static string DescribeAge(TimeSpan age) => Ages.Describe(age);

    /// <summary>The answer to show for a purge or its dry run.</summary>
    public static string Describe(IReadOnlyCollection<KeyRecord> keys, TimeSpan unseenFor, bool dryRun)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var age = DescribeAge(unseenFor);
        if (keys.Count == 0)
        {
            return $"No pending key has gone unseen for more than {age}; nothing to purge.";
        }

        return dryRun
            ? $"{keys.Count} pending key(s) unseen for more than {age} would be purged; add --yes to purge them."
            : $"Purged {keys.Count} pending key(s) unseen for more than {age}; an agent that comes back is recorded as pending again.";
    }
}
