using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>What the exchange cmdlets share: the configured client, error records with stable IDs, progress.</summary>
internal static class ExchangeCmdletSupport
{
    /// <summary>Stable progress activity id of the exchange cmdlets.</summary>
    public const int ProgressActivityId = 0x4551;

    /// <summary>Creates the exchange client (history and rate-limit warnings through <paramref name="guard"/>); not configured → terminating ExchangeNotConfigured.</summary>
    public static ExchangeClient Open(OperationGuard? guard)
    {
        try
        {
            return ExchangeClient.FromEnvironment(guard);
        }
        catch (ExchangeNotConfiguredException ex)
        {
            throw new EphTerminatingException(EphCmdlet.NewError(Strings.ExchangeNotConfiguredId, ErrorCategory.ResourceUnavailable, null, ex.Message, ex));
        }
        catch (ArgumentException ex)
        {
            throw new EphTerminatingException(EphCmdlet.NewError(Strings.ExchangeNotConfiguredId, ErrorCategory.InvalidData, null, ex.Message, ex));
        }
    }

    /// <summary>An error record for an exchange fault, with the ID and category that fit it; null for faults that are bugs.</summary>
    public static ErrorRecord? ToError(Exception ex, object? target) => ex switch
    {
        ExchangeNotConfiguredException => EphCmdlet.NewError(Strings.ExchangeNotConfiguredId, ErrorCategory.ResourceUnavailable, target, ex.Message, ex),
        ExchangeHostNotAllowedException => EphCmdlet.NewError(Strings.ExchangeHostNotAllowedId, ErrorCategory.SecurityError, target, ex.Message, ex),
        ChecksumMismatchException => EphCmdlet.NewError(Strings.ExchangeChecksumMismatchId, ErrorCategory.InvalidResult, target, ex.Message, ex),
        FileNotFoundException => EphCmdlet.NewError(Strings.ExchangeFileNotFoundId, ErrorCategory.ObjectNotFound, target, ex.Message, ex),
        LocalFileException local => EphCmdlet.NewError(Strings.LocalFileErrorId, ErrorCategory.WriteError, local.Path, ex.Message, ex),
        ArgumentException => EphCmdlet.NewError(Strings.ExchangeInvalidArgumentId, ErrorCategory.InvalidArgument, target, ex.Message, ex),
        ExchangeException { ErrorCode: "NoSuchKey" } => EphCmdlet.NewError(Strings.ExchangeTransferNotFoundId, ErrorCategory.ObjectNotFound, target, ex.Message, ex),
        HttpTransferException { Status: System.Net.HttpStatusCode.NotFound } => EphCmdlet.NewError(Strings.ExchangeTransferNotFoundId, ErrorCategory.ObjectNotFound, target, ex.Message, ex),
        ExchangeException or HttpTransferException or IOException or UnauthorizedAccessException or HttpRequestException
            => EphCmdlet.NewError(Strings.ExchangeFailedId, ErrorCategory.ConnectionError, target, ex.Message, ex),
        _ => null,
    };

    /// <summary>
    /// The exchange of <paramref name="cmdlet"/>'s session: through the server's operator service when connected (the
    /// server signs), else the credentials here over the registry. Dispose it when done (the registry and client here).
    /// </summary>
    public static async Task<ExchangeSession> OpenAsync(EphAsyncCmdlet cmdlet, CancellationToken ct)
    {
        if (cmdlet.Remote is { } remote)
        {
            return new ExchangeSession(new RemoteExchange(await cmdlet.RemoteOperatorAsync(ct).ConfigureAwait(false)),
                string.Format(CultureInfo.CurrentCulture, Strings.ExchangeOfServer, remote.Describe()), null, null);
        }

        var registry = cmdlet.OpenRegistry();
        try
        {
            var exchange = Open(cmdlet.NewGuard(registry));
            return new ExchangeSession(new LocalExchangeOperations(registry, exchange), exchange.Settings.ToString(), registry, exchange);
        }
        catch
        {
            registry.Dispose();
            throw;
        }
    }

    /// <summary>An exchange to work with, what to call its bucket in a -WhatIf line, and what to close after.</summary>
    internal sealed class ExchangeSession(IExchangeOperations ops, string bucket, RegistryStores? registry, ExchangeClient? exchange) : IDisposable
    {
        public IExchangeOperations Ops { get; } = ops;

        public string Bucket { get; } = bucket;

        public void Dispose()
        {
            exchange?.Dispose();
            registry?.Dispose();
        }
    }

    /// <summary>
    /// The error record of an exchange fault, here or answered by the server (with the same IDs); null for a refusal of
    /// the operator's role (it ends the cmdlet once, naming the role), faults of the connection, and bugs.
    /// </summary>
    public static ErrorRecord? ToError(Exception ex, object? target, EphRemoteSession? remote) => ex switch
    {
        OperatorRemoteException { Code: OperatorErrorCodes.NotConfigured } => EphCmdlet.NewError(Strings.ExchangeNotConfiguredId, ErrorCategory.ResourceUnavailable, target, ex.Message, ex),
        OperatorRemoteException { Code: OperatorErrorCodes.NotFound } r when r.Error.Names is not { Count: > 0 } =>
            EphCmdlet.NewError(Strings.ExchangeTransferNotFoundId, ErrorCategory.ObjectNotFound, target, ex.Message, ex),
        OperatorRemoteException { Code: OperatorErrorCodes.InvalidArgument } r when r.Error.Field == "url" =>
            EphCmdlet.NewError(Strings.ExchangeHostNotAllowedId, ErrorCategory.SecurityError, target, ex.Message, ex),
        OperatorRemoteException { Code: OperatorErrorCodes.InvalidArgument } => EphCmdlet.NewError(Strings.ExchangeInvalidArgumentId, ErrorCategory.InvalidArgument, target, ex.Message, ex),
        OperatorRemoteException { Code: OperatorErrorCodes.Failed } => EphCmdlet.NewError(Strings.ExchangeFailedId, ErrorCategory.ConnectionError, target, ex.Message, ex),
        OperatorRemoteException { Code: OperatorErrorCodes.Forbidden } => null,
        OperatorRemoteException r => RemoteErrors.ToRecord(r, remote, target),
        _ => RemoteErrors.IsConnectionFault(ex) ? null : ToError(ex, target),
    };

    /// <summary>
    /// Progress to the pipeline thread, throttled to a few updates per second. It does not implement
    /// IProgress of a Core type itself (the cmdlets assembly exposes no dependency type): use <see cref="AsProgress"/>.
    /// </summary>
    internal sealed class ThrottledProgress(EphAsyncCmdlet cmdlet, string target)
    {
        private readonly Stopwatch _since = Stopwatch.StartNew();
        private readonly object _gate = new();
        private bool _any;

        public void Report(ExchangeProgress value)
        {
            lock (_gate)
            {
                if (_any && _since.ElapsedMilliseconds < 250 && value.Done != value.Total)
                {
                    return;
                }

                _any = true;
                _since.Restart();
            }

            var total = value.Total ?? 0;
            cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, Strings.ExchangeProgressActivity,
                string.Format(CultureInfo.CurrentCulture, Strings.ExchangeProgressStatus, value.Phase, value.Done, total))
            {
                CurrentOperation = target,
                PercentComplete = total > 0 ? (int)Math.Min(100, value.Done * 100 / total) : -1,
            });
        }

        public IProgress<ExchangeProgress> AsProgress() => new CallbackProgress<ExchangeProgress>(Report);

        public void Complete() => cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, Strings.ExchangeProgressActivity, "done")
        {
            RecordType = ProgressRecordType.Completed,
        });
    }
}

/// <summary>Completes -TransferId with the transfers in the bucket (nothing when the exchange is not configured).</summary>
public sealed class TransferIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var source = fakeBoundParameters?["SourceClient"] as string;
            IReadOnlyList<ExchangeObject> items;
            if (ModuleConfiguration.Current.Remote is { } remote)
            {
                // Connected: the server lists (with its credentials); nothing is asked of a local bucket.
                items = new RemoteExchange(remote.Server.GetAsync(timeout.Token).GetAwaiter().GetResult()).ListAsync(source, null, timeout.Token).GetAwaiter().GetResult();
            }
            else
            {
                using var exchange = ExchangeClient.FromEnvironment();
                items = exchange.ListAsync(source, includeMetadata: false, ct: timeout.Token).GetAwaiter().GetResult();
            }

            var pattern = new WildcardPattern((wordToComplete ?? "").Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
            return items.Where(i => i.TransferId is not null && pattern.IsMatch(i.TransferId))
                .Select(i => new CompletionResult(ClientQueries.QuoteIfNeeded(i.TransferId!), i.TransferId!, CompletionResultType.ParameterValue, $"{i.TransferId} ({i.Size:N0} bytes)"))
                .ToList();
        }
        catch (Exception ex) when (ex is ExchangeNotConfiguredException or ExchangeException or ArgumentException or OperationCanceledException or HttpRequestException or IOException
            or OperatorRemoteException or RemoteConnectionException or OperatorConnectionLostException)
        {
            return [];
        }
    }
}
