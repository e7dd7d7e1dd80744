using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>Approve-/Revoke-EphClientKey through a server connection: the same loop around a different decision.</summary>
internal static class RemoteKeyDecisions
{
    /// <summary>
    /// For each id: <paramref name="confirm"/> (-WhatIf/-Confirm), then <paramref name="decide"/> through the server (it
    /// writes its own verbose or warning line and returns the key's fingerprint). The server's NOT_FOUND is KeyNotFound
    /// and any other refusal that id's error (a role refusal ends the cmdlet, naming the role); the others go on. With
    /// <paramref name="passThru"/>, the decided key — that one only — is written.
    /// </summary>
    public static async Task RunAsync(EphAsyncCmdlet cmdlet, RemoteOperator op, IEnumerable<string> ids, Func<string, Task<bool>> confirm,
        Func<string, Task<string>> decide, bool passThru, CancellationToken ct)
    {
        foreach (var id in ids)
        {
            if (!await confirm(id).ConfigureAwait(false))
            {
                continue;
            }

            string fingerprint;
            try
            {
                fingerprint = await decide(id).ConfigureAwait(false);
            }
            catch (OperatorRemoteException ex) when (ex.Code == OperatorErrorCodes.NotFound)
            {
                cmdlet.WriteError(EphCmdlet.NewError(Strings.KeyNotFoundId, ErrorCategory.ObjectNotFound, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.KeyNotFound, id), ex));
                continue;
            }
            catch (OperatorRemoteException ex)
            {
                cmdlet.WriteError(cmdlet.RemoteTargetError(ex, id, Strings.KeyDecisionNeededId));
                continue;
            }

            if (passThru && await op.GetKeyAsync(fingerprint, ct).ConfigureAwait(false) is { } key)
            {
                cmdlet.WriteObject(new EphClientKey(key));
            }
        }
    }
}
