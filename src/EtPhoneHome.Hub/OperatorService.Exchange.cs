using System.Collections.Concurrent;
using System.Text.Json;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Services;

namespace EtPhoneHome.Hub;

public sealed partial class OperatorService
{
    private sealed partial class Connection
    {
        /// <summary>Uploads this connection started and has not ended; aborted when it closes.</summary>
        private readonly ConcurrentDictionary<string, OpenUpload> _uploads = new(StringComparer.Ordinal);

        /// <summary>Uploads open on this connection, counted when a start is admitted (so concurrent starts cannot pass the bound).</summary>
        private int _openUploads;

        private sealed record OpenUpload(OperatorServices Services, ExchangeClient Exchange, ExchangeStagedUpload Upload) : IDisposable
        {
            private readonly SemaphoreSlim _turn = new(1, 1);

            /// <summary>One request at a time on an upload (a completion and an abort never race): the next waits its turn.</summary>
            public async Task<IDisposable> EnterAsync(CancellationToken ct)
            {
                await _turn.WaitAsync(ct).ConfigureAwait(false);
                return new Leave(_turn);
            }

            private sealed class Leave(SemaphoreSlim turn) : IDisposable
            {
                private int _left;

                public void Dispose()
                {
                    if (Interlocked.Exchange(ref _left, 1) == 0)
                    {
                        turn.Release();
                    }
                }
            }

            public void Dispose()
            {
                Exchange.Dispose();
                Services.Dispose();
            }
        }

        /// <summary>
        /// The exchange operations (roles checked before this runs). The server signs with the bucket's credentials and
        /// hands out presigned URLs; the operator's machine moves the bytes to and from the bucket itself.
        /// </summary>
        private async Task<JsonElement> RunExchangeAsync(ServerCall call, OperatorIdentity who)
        {
            try
            {
                return call.Op is OperatorOperations.ExchangeUploadParts or OperatorOperations.ExchangeUploadComplete or OperatorOperations.ExchangeUploadAbort
                    ? await RunOpenUploadAsync(call).ConfigureAwait(false)
                    : await RunWithExchangeAsync(call, who).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                // A fault of the bucket's connection, not of a client: said as the exchange's own.
                throw new ExchangeException($"the exchange failed: {ex.Message}", null, ex);
            }
        }

        /// <summary>A request on an upload this connection started: parts' URLs, its completion, its abort.</summary>
        private async Task<JsonElement> RunOpenUploadAsync(ServerCall call)
        {
            var ct = call.Token;
            switch (call.Op)
            {
                case OperatorOperations.ExchangeUploadParts:
                {
                    var args = OperatorOperations.FromElement<ExchangeUploadPartsArgs>(call.Args);
                    var open = OpenUploadOf(args.TransferId);
                    using var turn = await open.EnterAsync(ct).ConfigureAwait(false);
                    if (args.Count is < 1 or > ExchangeOperationLimits.MaxPartUrls || args.First < 1 || args.First > open.Upload.PartCount - args.Count + 1)
                    {
                        throw new ArgumentException($"parts {args.First} (+{args.Count}) are not parts of this upload (1 to {open.Upload.PartCount}, at most {ExchangeOperationLimits.MaxPartUrls} at a time)");
                    }

                    return OperatorOperations.ToElement(new ExchangeUploadPartUrls
                    {
                        Urls = Enumerable.Range(args.First, args.Count).Select(n => open.Exchange.PresignStagedPart(open.Upload, n).AbsoluteUri).ToList(),
                    });
                }

                case OperatorOperations.ExchangeUploadComplete:
                {
                    var args = OperatorOperations.FromElement<ExchangeUploadCompleteArgs>(call.Args);
                    var open = OpenUploadOf(args.TransferId);
                    using var turn = await open.EnterAsync(ct).ConfigureAwait(false);
                    ExchangeUploadResult done;
                    try
                    {
                        done = await open.Exchange.CompleteStagedUploadAsync(open.Upload, args.Sha256, args.ETags, verifyArrival: true, ct).ConfigureAwait(false);
                    }
                    catch (ArgumentException)
                    {
                        // A malformed completion changes nothing: the operator may complete it correctly or abort it.
                        throw;
                    }
                    catch
                    {
                        Forget(args.TransferId); // the completion's fault aborted it
                        throw;
                    }

                    Forget(args.TransferId);
                    return OperatorOperations.ToElement(done);
                }

                default:
                {
                    var args = OperatorOperations.FromElement<ExchangeUploadAbortArgs>(call.Args);
                    var open = OpenUploadOf(args.TransferId);
                    using (await open.EnterAsync(ct).ConfigureAwait(false))
                    {
                        await AbortAsync(args.TransferId).ConfigureAwait(false);
                    }

                    return OperatorOperations.ToElement(new SearchResult { Count = 1 });
                }
            }
        }

        /// <summary>The hub's exchange; settings that do not hold are NOT_CONFIGURED (their values are not echoed to operators).</summary>
        private static ExchangeClient OpenExchange(OperatorServices services)
        {
            try
            {
                return services.Exchange();
            }
            catch (ArgumentException ex)
            {
                throw new ExchangeNotConfiguredException([$"a valid exchange setting ({ex.ParamName ?? "ETPHONEHOME_R2_*"})"]);
            }
        }

        private async Task<JsonElement> RunWithExchangeAsync(ServerCall call, OperatorIdentity who)
        {
            var ct = call.Token;
            using var services = NewServices(who, call);
            using var exchange = OpenExchange(services);
            switch (call.Op)
            {
                case OperatorOperations.ExchangeList:
                {
                    var args = call.Args is { ValueKind: JsonValueKind.Object } ? OperatorOperations.FromElement<ExchangeListArgs>(call.Args) : new ExchangeListArgs();
                    var source = args.SourceClient is null ? null : ExchangeParticipants.Resolve(Registry.Clients, args.SourceClient, "source_client");
                    var dest = args.DestClient is null ? null : ExchangeParticipants.Resolve(Registry.Clients, args.DestClient, "dest_client");
                    return OperatorOperations.ToElement(await exchange.ListAsync(source, dest, includeMetadata: true, ct).ConfigureAwait(false));
                }

                case OperatorOperations.ExchangeDelete:
                {
                    var args = OperatorOperations.FromElement<ExchangeDeleteArgs>(call.Args);
                    var source = ExchangeParticipants.Resolve(Registry.Clients, args.SourceClient, "source_client");
                    return OperatorOperations.ToElement(await exchange.DeleteAsync(args.TransferId, source, ct).ConfigureAwait(false));
                }

                case OperatorOperations.ExchangeUploadUrl:
                {
                    var args = OperatorOperations.FromElement<ExchangeUploadUrlArgs>(call.Args);
                    var source = ExchangeParticipants.Resolve(Registry.Clients, args.SourceClient, "source_client");
                    return OperatorOperations.ToElement(exchange.CreateUploadUrl(source, args.FileName, args.ExpiresHours));
                }

                case OperatorOperations.ExchangeDownload:
                    return OperatorOperations.ToElement(await DownloadTicketAsync(exchange, OperatorOperations.FromElement<ExchangeDownloadArgs>(call.Args), ct).ConfigureAwait(false));

                case OperatorOperations.ExchangeUploadStart:
                {
                    var args = OperatorOperations.FromElement<ExchangeUploadStartArgs>(call.Args);
                    if (Interlocked.Increment(ref _openUploads) > ExchangeOperationLimits.MaxOpenUploads)
                    {
                        Interlocked.Decrement(ref _openUploads);
                        throw new InvalidOperationException($"{ExchangeOperationLimits.MaxOpenUploads} uploads are already open on this connection; complete or abort one first");
                    }

                    // The upload outlives this call: it keeps its own services and exchange (the history lease is theirs).
                    OperatorServices? keptServices = null;
                    ExchangeClient? keptExchange = null;
                    var admitted = false;
                    try
                    {
                        var dest = args.DestClient is null ? null : ExchangeParticipants.Resolve(Registry.Clients, args.DestClient, "dest_client");
                        keptServices = NewServices(who, call);
                        keptExchange = OpenExchange(keptServices);
                        var upload = await keptExchange.StartStagedUploadAsync(args.FileName, args.Size, args.Sha256, dest, args.ExpiresHours, ExchangeLimits.ServerSource, ct).ConfigureAwait(false);
                        if (!_uploads.TryAdd(upload.TransferId, new OpenUpload(keptServices, keptExchange, upload)))
                        {
                            await keptExchange.AbortStagedUploadAsync(upload, null, cancelled: true).ConfigureAwait(false);
                            throw new InvalidOperationException($"an upload '{upload.TransferId}' is already open on this connection");
                        }

                        admitted = true;
                        if ((_life.IsCancellationRequested || ct.IsCancellationRequested) && _uploads.ContainsKey(upload.TransferId))
                        {
                            // The connection closed or the caller gave up while this started: nobody will send its bytes.
                            await AbortAsync(upload.TransferId).ConfigureAwait(false);
                            throw new OperationCanceledException(ct);
                        }

                        return OperatorOperations.ToElement(new ExchangeUploadPlan
                        {
                            TransferId = upload.TransferId,
                            Key = upload.Key,
                            Multipart = upload.Multipart,
                            PartSize = upload.PartSize,
                            PartCount = upload.PartCount,
                            Headers = upload.Headers,
                        });
                    }
                    catch
                    {
                        if (!admitted)
                        {
                            Interlocked.Decrement(ref _openUploads);
                            keptExchange?.Dispose();
                            keptServices?.Dispose();
                        }

                        throw;
                    }
                }

                case OperatorOperations.ExchangeDeliver:
                {
                    var args = OperatorOperations.FromElement<ExchangeDeliverArgs>(call.Args);
                    TransferNames.SourceOf(args.TransferId); // a malformed id is refused before any target is resolved
                    var targets = services.Targets(args.Targets);
                    await SendItemAsync(call.Id, new FanOutItem { Targets = targets.Select(t => new RemoteTarget(t.Uuid, t.DisplayName)).ToList() }, ct).ConfigureAwait(false);
                    var count = 0;
                    var throttle = Math.Clamp(args.ThrottleLimit, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit);
                    await foreach (var result in new ExchangeDelivery(exchange).DeliverAsync(targets, args.TransferId, args.RemotePath, throttle, ct).ConfigureAwait(false))
                    {
                        count++;
                        await SendItemAsync(call.Id, new FanOutItem { Delivery = result }, CancellationToken.None).ConfigureAwait(false);
                    }

                    return OperatorOperations.ToElement(new SearchResult { Count = count });
                }

                case OperatorOperations.ExchangeCollect:
                {
                    var args = OperatorOperations.FromElement<ExchangeCollectArgs>(call.Args);
                    var target = services.Targets(new TargetSelection { Clients = [args.Client] }) switch
                    {
                        [var one] => one,
                        var many => throw new ArgumentException($"'{args.Client}' names {many.Count} clients; name one"),
                    };
                    return OperatorOperations.ToElement(await new ExchangeDelivery(exchange).CollectToBucketAsync(target, args.RemotePath, ct).ConfigureAwait(false));
                }

                case OperatorOperations.ExchangeLifecycle:
                    return OperatorOperations.ToElement(await exchange.GetLifecycleAsync(ct).ConfigureAwait(false));

                case OperatorOperations.ExchangeInitialize:
                    return OperatorOperations.ToElement(await exchange.InitializeAsync(ct).ConfigureAwait(false));

                default:
                    throw new ArgumentException($"the server has no operation \"{call.Op}\"");
            }
        }

        /// <summary>
        /// A download's URL and what to verify it with: for a transfer, a presigned GET (for the exchange's internal URL
        /// lifetime) with the hash and part size the bucket records; for a URL, the same URL once its host passed the
        /// endpoint check (and the recorded hash when it names a transfer of this bucket). Recorded as a download.
        /// </summary>
        private async Task<ExchangeDownloadTicket> DownloadTicketAsync(ExchangeClient exchange, ExchangeDownloadArgs args, CancellationToken ct)
        {
            if ((args.TransferId is null) == (args.Url is null))
            {
                throw new ArgumentException("exchange.download needs a transfer id or a URL (one of them)");
            }

            var url = args.Url is null ? null : Uri.TryCreate(args.Url, UriKind.Absolute, out var parsed) ? parsed : throw new ArgumentException("url is not an absolute URL");
            var ticket = await exchange.CreateDownloadSourceAsync(args.TransferId, url, args.AllowAnyHost, ct).ConfigureAwait(false);
            return new ExchangeDownloadTicket
            {
                Url = ticket.Url.AbsoluteUri,
                TransferId = ticket.TransferId,
                Sha256 = ticket.Sha256,
                Size = ticket.Size,
                PartSize = ticket.PartSize,
            };
        }

        private OpenUpload OpenUploadOf(string transferId) =>
            _uploads.TryGetValue(transferId ?? "", out var open)
                ? open
                : throw new RegistryNotFoundException($"no upload '{Core.Text.UntrustedText.ForTerminal(transferId ?? "", 80)}' is open on this connection (it was never started here, or it ended)");

        /// <summary>Forgets an upload that ended (completed, or aborted by its completion's fault) and frees its place.</summary>
        private void Forget(string transferId)
        {
            if (_uploads.TryRemove(transferId, out var open))
            {
                Interlocked.Decrement(ref _openUploads);
                open.Dispose();
            }
        }

        /// <summary>
        /// Takes an open upload away from the connection and aborts it (bounded; a fault is logged, never thrown). Whoever
        /// removes it owns it: nothing else disposes its exchange while the abort runs.
        /// </summary>
        private async Task AbortAsync(string transferId)
        {
            if (!_uploads.TryRemove(transferId, out var open))
            {
                return;
            }

            try
            {
                await open.Exchange.AbortStagedUploadAsync(open.Upload, null, cancelled: true, removeObject: true).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _service.Log(EphLogLevel.Warning, $"abort of upload {Core.Text.UntrustedText.ForTerminal(transferId, 80)} failed: {ex.GetType().Name}; the lifecycle rule removes what it left");
            }
            finally
            {
                Interlocked.Decrement(ref _openUploads);
                open.Dispose();
            }
        }

        /// <summary>Aborts what this connection started and never ended (the operator's machine went away).</summary>
        private async Task AbortOpenUploadsAsync()
        {
            foreach (var (transferId, open) in _uploads.ToList())
            {
                // A request still on it (past the connection's wait for its calls) ends first, or the abort waits no longer than this.
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                IDisposable? turn = null;
                try
                {
                    turn = await open.EnterAsync(wait.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _service.Log(EphLogLevel.Warning, $"upload {Core.Text.UntrustedText.ForTerminal(transferId, 80)} still had a request running when its connection closed; left to the lifecycle rule");
                    continue;
                }

                using (turn)
                {
                    await AbortAsync(transferId).ConfigureAwait(false);
                }
            }
        }
    }
}
