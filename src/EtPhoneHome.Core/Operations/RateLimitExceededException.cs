using System.Globalization;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// An enforced rate limit refused a request before anything was sent to the client. Fan-outs report it as
/// <see cref="CommandStatus.RateLimited"/>; nothing was counted or changed except the refusal in the history.
/// </summary>
public sealed class RateLimitExceededException : Exception
{
    public RateLimitExceededException(string uuid, string operation, RateLimitAdmission admission)
        : base(Describe(uuid, operation, admission ?? throw new ArgumentNullException(nameof(admission)))
               + "; request refused (rate_limit_mode is enforce)")
    {
        Uuid = uuid;
        Operation = operation;
        Stats = admission.Stats;
    }

    public string Uuid { get; }
    public string Operation { get; }
    public RateLimitStats Stats { get; }

    /// <summary>"client X (command): 61 requests in the last 60 s, over the limit of 60".</summary>
    internal static string Describe(string uuid, string operation, RateLimitAdmission admission)
    {
        var s = admission.Stats;
        var parts = new List<string>(2);
        if (admission.OverRpm)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"{(admission.Allowed ? s.RequestsPerMinute : s.RequestsPerMinute + 1)} requests in the last 60 s, over the limit of {s.RpmLimit} (rate_limit_rpm)"));
        }

        if (admission.OverConcurrent)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"{(admission.Allowed ? s.CurrentConcurrent : s.CurrentConcurrent + 1)} requests in flight, over the limit of {s.ConcurrentLimit} (rate_limit_concurrent)"));
        }

        return $"client {uuid} ({operation}): {string.Join(" and ", parts)}";
    }
}
