using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>The operator cmdlets' remote side: an operator by name or fingerprint as the registry finds it, the server's refusals as the local errors.</summary>
internal static class OperatorLookup
{
    /// <summary>The active operator named <paramref name="nameOrFingerprint"/> (any case) or with that key fingerprint; null when none.</summary>
    public static async Task<OperatorRecord?> FindAsync(RemoteOperator remote, string nameOrFingerprint, CancellationToken ct)
    {
        var wanted = nameOrFingerprint.Trim();
        return (await remote.ListOperatorsAsync(false, ct).ConfigureAwait(false))
            .FirstOrDefault(o => string.Equals(o.Name, wanted, StringComparison.OrdinalIgnoreCase) || string.Equals(o.Fingerprint, wanted, StringComparison.Ordinal));
    }

    /// <summary>
    /// A refused change: NOT_FOUND is OperatorNotFound, a bad argument (the last admin, a taken name) InvalidOperator,
    /// a role refusal ends the cmdlet naming the role.
    /// </summary>
    public static ErrorRecord Error(EphAsyncCmdlet cmdlet, OperatorRemoteException ex, string name) => ex.Code switch
    {
        OperatorErrorCodes.NotFound => EphCmdlet.NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, name,
            string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, name), ex),
        OperatorErrorCodes.InvalidArgument => EphCmdlet.NewError(Strings.InvalidOperatorId, ErrorCategory.InvalidOperation, name, ex.Message, ex),
        _ => cmdlet.RemoteTargetError(ex, name, Strings.InvalidOperatorId),
    };
}
