using System.Text.Json;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Services;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Hub;

public sealed partial class OperatorService
{
    private sealed partial class Connection
    {
        /// <summary>Runs one allowed request through its Core entry point; its items are sent as they come, its result returned.</summary>
        private async Task<JsonElement> RunOperationAsync(ServerCall call, OperatorIdentity who)
        {
            var ct = call.Token;
            switch (call.Op)
            {
                case OperatorOperations.Hello:
                    var hello = call.Args is { ValueKind: JsonValueKind.Object } ? OperatorOperations.FromElement<HelloArgs>(call.Args) : new HelloArgs();
                    if (hello.Protocol != OperatorOperations.ProtocolVersion)
                    {
                        throw new ArgumentException($"this server speaks operator protocol {OperatorOperations.ProtocolVersion}, the client {hello.Protocol}; install the matching module version");
                    }

                    SetSurface(hello.Surface);
                    return OperatorOperations.ToElement(new HelloResult
                    {
                        Protocol = OperatorOperations.ProtocolVersion,
                        ServerVersion = typeof(OperatorService).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
                        Operator = who.Name,
                        Role = who.Role,
                        Host = _service.HostName,
                        Source = who.Source,
                    });

                case OperatorOperations.SearchClients:
                {
                    var query = OperatorOperations.FromElement<ClientQuery>(call.Args);
                    var lookup = ClientQueries.Search(Registry.Clients, query);
                    foreach (var page in lookup.Clients.Chunk(OperatorOperations.SearchPageSize))
                    {
                        await SendItemAsync(call.Id, page.Select(RemoteView).ToArray(), ct).ConfigureAwait(false);
                    }

                    return OperatorOperations.ToElement(new SearchResult { NotFound = lookup.NotFound, Count = lookup.Clients.Count });
                }

                case OperatorOperations.RunCommands:
                {
                    var args = OperatorOperations.FromElement<RunCommandsArgs>(call.Args);
                    var options = new FleetOptions
                    {
                        ThrottleLimit = Math.Clamp(args.ThrottleLimit, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit),
                        PerTargetTimeout = args.PerTargetTimeoutSeconds is > 0 and var s ? TimeSpan.FromSeconds(s) : null,
                        MaxErrors = string.IsNullOrEmpty(args.MaxErrors) ? null : ErrorLimit.Parse(args.MaxErrors),
                    };
                    args.Request.ToParams(); // the one command rule, before any target is resolved or contacted
                    using var services = NewServices(who, call);
                    var targets = services.Targets(args.Targets);
                    await SendItemAsync(call.Id, new FanOutItem { Targets = targets.Select(t => new RemoteTarget(t.Uuid, t.DisplayName)).ToList() }, ct).ConfigureAwait(false);
                    var count = 0;
                    // The fan-out ends every in-flight target itself when cancelled (Error "cancelled", the rest Skipped):
                    // each target still gets its result, so the stream is read to its end.
                    await foreach (var result in services.RunCommandsAsync(targets, args.Request, options, ct).ConfigureAwait(false))
                    {
                        count++;
                        await SendItemAsync(call.Id, new FanOutItem { Result = result }, CancellationToken.None).ConfigureAwait(false);
                    }

                    return OperatorOperations.ToElement(new SearchResult { Count = count });
                }

                case OperatorOperations.CollectMetrics:
                {
                    var args = OperatorOperations.FromElement<CollectMetricsArgs>(call.Args);
                    using var services = NewServices(who, call);
                    var targets = services.Targets(args.Targets);
                    await SendItemAsync(call.Id, new FanOutItem { Targets = targets.Select(t => new RemoteTarget(t.Uuid, t.DisplayName)).ToList() }, ct).ConfigureAwait(false);
                    var options = new FleetMetricsOptions
                    {
                        ThrottleLimit = Math.Clamp(args.ThrottleLimit, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit),
                        Timeout = args.TimeoutSeconds is > 0 and var t ? TimeSpan.FromSeconds(t) : new FleetMetricsOptions().Timeout,
                    };
                    var count = 0;
                    await foreach (var result in services.CollectMetricsAsync(targets, args.Summary, options, ct).ConfigureAwait(false))
                    {
                        count++;
                        await SendItemAsync(call.Id, new FanOutItem { Metrics = result }, CancellationToken.None).ConfigureAwait(false);
                    }

                    return OperatorOperations.ToElement(new SearchResult { Count = count });
                }

                case OperatorOperations.ReadFiles:
                case OperatorOperations.WriteFiles:
                case OperatorOperations.ListFiles:
                    return await FileOperationAsync(call, who).ConfigureAwait(false);

                case OperatorOperations.RateLimitStats:
                {
                    var uuids = call.Args is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty("clients", out var names) && names.ValueKind == JsonValueKind.Array
                        ? ClientQueries.Find(Registry.Clients, OperatorOperations.FromElement<string[]>(names), null, onlineOnly: false) is var lookup && lookup.NotFound.Count > 0
                            ? throw new UnknownClientsException(lookup.NotFound)
                            : lookup.Clients.Select(c => c.Uuid).ToList()
                        : null;
                    return OperatorOperations.ToElement(Registry.RateLimits.GetRateLimitStats(uuids, new RateLimitPolicy()));
                }

                case OperatorOperations.WebhookDeliveries:
                {
                    var query = call.Args is { ValueKind: JsonValueKind.Object } ? OperatorOperations.FromElement<WebhookDeliveryQuery>(call.Args) : new WebhookDeliveryQuery();
                    query = query with { Limit = Math.Clamp(query.Limit, 1, MaxWebhookDeliveries) };
                    var rows = Registry.Webhooks.ListWebhookDeliveries(query);
                    var config = Core.Webhooks.WebhookConfiguration.Resolve(Registry.Settings);
                    return OperatorOperations.ToElement(new WebhookDeliveryPage
                    {
                        GlobalUrl = config.GlobalUrl is { } global ? Core.Webhooks.WebhookConfiguration.Redact(global) : null,
                        HasSecret = config.HasSecret,
                        Deliveries = rows.Select(RemoteView).ToList(),
                        Attempts = Registry.Webhooks.ListWebhookAttempts(rows.Select(d => d.Id).ToList())
                            .Select(a => a with { Url = Core.Webhooks.WebhookConfiguration.Redact(a.Url) }).ToList(),
                    });
                }

                case OperatorOperations.ResendWebhook:
                    return OperatorOperations.ToElement(RemoteView(Registry.Webhooks.ResendWebhookDelivery(StringArg(call, "id"), $"{who.Name} ({RemoteSurfaces.Recorded(_surface)})")));

                case OperatorOperations.FleetStatus:
                {
                    var args = call.Args is { ValueKind: JsonValueKind.Object } ? OperatorOperations.FromElement<FleetStatusArgs>(call.Args) : new FleetStatusArgs();
                    args.Thresholds?.Validate();
                    var defaults = new FleetMetricsOptions();
                    var options = new FleetMetricsOptions
                    {
                        ThrottleLimit = args.ThrottleLimit is { } throttle ? Math.Clamp(throttle, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit) : defaults.ThrottleLimit,
                        Timeout = args.TimeoutSeconds is > 0 and var seconds ? TimeSpan.FromSeconds(Math.Min(seconds, MaxFleetStatusTimeoutSeconds)) : defaults.Timeout,
                    };
                    using var services = NewServices(who);
                    return OperatorOperations.ToElement(await services.FleetStatusAsync(args.Thresholds, options, ct).ConfigureAwait(false));
                }

                case OperatorOperations.QueryHistory:
                {
                    var args = OperatorOperations.FromElement<HistoryArgs>(call.Args);
                    var query = args.Query with { Take = Math.Clamp(args.Query.Take, 1, HistoryQuery.MaxTake), Skip = Math.Max(0, args.Query.Skip) };
                    var entries = Registry.History.QueryHistory(query);
                    return OperatorOperations.ToElement(new HistoryPage
                    {
                        Entries = entries,
                        DisplayNames = ClientHistory.DisplayNames(Registry.Clients, entries.Select(e => e.Uuid)),
                        Total = args.WithTotal ? Registry.History.CountHistory(query) : null,
                    });
                }

                case OperatorOperations.ListKeys:
                {
                    if (call.Args is { ValueKind: JsonValueKind.Object } k && k.TryGetProperty("fingerprint", out var f) && f.ValueKind == JsonValueKind.String)
                    {
                        // One key (a -PassThru after a decision): not the whole list once per key.
                        return OperatorOperations.ToElement(Registry.Keys.GetKey(StringArg(call, "fingerprint")) is { } one ? new[] { one } : []);
                    }

                    var pending = call.Args is { ValueKind: JsonValueKind.Object } a && a.TryGetProperty("pending", out var p) && p.ValueKind == JsonValueKind.True;
                    return OperatorOperations.ToElement(Registry.Keys.ListKeys(pending ? KeyStatus.Pending : null));
                }

                case OperatorOperations.ApproveKey:
                    return OperatorOperations.ToElement(KeyAdministration.Approve(Registry.Keys, StringArg(call, "id"), NewServices(who).Context));

                case OperatorOperations.RevokeKey:
                    return OperatorOperations.ToElement(KeyAdministration.Revoke(Registry.Keys, StringArg(call, "id"), NewServices(who).Context).Outcome);

                case OperatorOperations.UpdateClient:
                {
                    var client = ClientQueries.Single(Registry.Clients, StringArg(call, "client"));
                    var update = OperatorOperations.FromElement<ClientUpdate>(call.Args!.Value.TryGetProperty("update", out var u) ? (JsonElement?)u : null);
                    if (who.Role < OperatorRole.Admin && AdminOnlyFields(update) is { Count: > 0 } fields)
                    {
                        // Allowed paths, the webhook and the rate limits bound what operators do and where events go:
                        // an operator may not widen its own bounds or redirect a client's events.
                        throw new ForbiddenException(OperatorRole.Admin,
                            $"changing {string.Join(", ", fields)} needs the admin role; operator {who.Name} has {OperatorRoles.Wire(who.Role)}; nothing was changed");
                    }

                    return OperatorOperations.ToElement(RemoteView(ClientAdministration.Set(Registry.Clients, client.Uuid, update, NewServices(who).Context)));
                }

                case OperatorOperations.RemoveClient:
                {
                    var client = ClientQueries.Single(Registry.Clients, StringArg(call, "client"));
                    return OperatorOperations.ToElement(ClientAdministration.Remove(Registry.Clients, client.Uuid, NewServices(who).Context).Outcome);
                }

                case OperatorOperations.Upload:
                    return await UploadAsync(call, who).ConfigureAwait(false);

                case OperatorOperations.Download:
                    return await DownloadAsync(call, who).ConfigureAwait(false);

                case { } op when op.StartsWith("exchange.", StringComparison.Ordinal):
                    return await RunExchangeAsync(call, who).ConfigureAwait(false);

                default:
                    return await RunAdministrationAsync(call, who).ConfigureAwait(false);
            }
        }

        /// <summary>A file read, write or listing on many targets; one outcome per target, streamed as each finishes.</summary>
        private async Task<JsonElement> FileOperationAsync(ServerCall call, OperatorIdentity who)
        {
            var ct = call.Token;
            var args = OperatorOperations.FromElement<FileOperationArgs>(call.Args);
            var throttle = Math.Clamp(args.ThrottleLimit, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit);
            var given = call.Op switch
            {
                OperatorOperations.ReadFiles => args.Read is not null,
                OperatorOperations.WriteFiles => args.Write is not null,
                _ => args.List is not null,
            };
            if (!given)
            {
                throw new ArgumentException($"{call.Op} needs its request (read, write or list)");
            }

            using var services = NewServices(who, call);
            var targets = services.Targets(args.Targets);
            await SendItemAsync(call.Id, new FanOutItem { Targets = targets.Select(t => new RemoteTarget(t.Uuid, t.DisplayName)).ToList() }, ct).ConfigureAwait(false);
            var count = 0;
            async Task Stream<T>(IAsyncEnumerable<FleetFileOutcome<T>> outcomes)
                where T : class
            {
                await foreach (var o in outcomes.ConfigureAwait(false))
                {
                    count++;
                    await SendItemAsync(call.Id, new FanOutItem
                    {
                        File = new RemoteFileOutcome
                        {
                            Uuid = o.Target.Uuid,
                            DisplayName = o.Target.DisplayName,
                            Status = o.Status,
                            Value = o.Value is null ? null : OperatorOperations.ToElement(o.Value),
                            Error = o.Error,
                            DurationMs = o.DurationMs,
                            Failure = o.Failure,
                        },
                    }, CancellationToken.None).ConfigureAwait(false);
                }
            }

            switch (call.Op)
            {
                case OperatorOperations.ReadFiles when args.Read is { } read:
                    await Stream(services.ReadFilesAsync(targets, read, throttle, ct)).ConfigureAwait(false);
                    break;
                case OperatorOperations.WriteFiles when args.Write is { } write:
                    await Stream(services.WriteFilesAsync(targets, write, throttle, ct)).ConfigureAwait(false);
                    break;
                case OperatorOperations.ListFiles when args.List is { } list:
                    await Stream(services.ListFilesAsync(targets, list, throttle, ct)).ConfigureAwait(false);
                    break;
                default:
                    throw new ArgumentException($"{call.Op} needs its request (read, write or list)");
            }

            return OperatorOperations.ToElement(new SearchResult { Count = count });
        }

        /// <summary>
        /// A client as an operator connection sees it: the webhook URL without its credentials (user info and query,
        /// as on every output surface; the history never holds it), and no tunnel port or session (they never cross).
        /// </summary>
        internal static ClientRecord RemoteView(ClientRecord client) => client with
        {
            WebhookUrl = client.WebhookUrl is { } url ? Core.Webhooks.WebhookConfiguration.Redact(url) : null,
            TunnelPort = null,
            SessionId = null,
        };

        /// <summary>Most webhook deliveries one listing returns (the cmdlet's and the CLI's bound).</summary>
        internal const int MaxWebhookDeliveries = 10_000;

        /// <summary>Longest per-client wait of a fleet status (the cmdlet's bound).</summary>
        internal const double MaxFleetStatusTimeoutSeconds = 600;

        /// <summary>
        /// A delivery as an operator connection sees it: its webhook URLs without their credentials, and its body without
        /// the tunnel port a client.connected event names (tunnel ports never cross the operator connection).
        /// </summary>
        internal static WebhookDelivery RemoteView(WebhookDelivery delivery) => delivery with
        {
            Url = delivery.Url is { } url ? Core.Webhooks.WebhookConfiguration.Redact(url) : null,
            ClientWebhookUrl = delivery.ClientWebhookUrl is { } own ? Core.Webhooks.WebhookConfiguration.Redact(own) : null,
            Payload = WithoutTunnelPort(delivery.Payload),
        };

        private static string WithoutTunnelPort(string payload)
        {
            try
            {
                if (System.Text.Json.Nodes.JsonNode.Parse(payload) is System.Text.Json.Nodes.JsonObject body
                    && body["data"] is System.Text.Json.Nodes.JsonObject data && data.Remove("tunnel_port"))
                {
                    return body.ToJsonString();
                }
            }
            catch (JsonException)
            {
                // Not JSON: nothing of ours to take out.
            }

            return payload;
        }

        /// <summary>The fields of an edit only an admin may change.</summary>
        internal static List<string> AdminOnlyFields(ClientUpdate update)
        {
            var fields = new List<string>();
            if (update.AllowedPaths is not null || update.ClearAllowedPaths)
            {
                fields.Add("allowed paths");
            }

            if (update.WebhookUrl is not null)
            {
                fields.Add("the webhook URL");
            }

            if (update.RateLimitRpm is not null || update.RateLimitConcurrent is not null)
            {
                fields.Add("rate limits");
            }

            return fields;
        }

        private static string StringArg(ServerCall call, string name) =>
            call.Args is { ValueKind: JsonValueKind.Object } args && args.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                && value.GetString() is { Length: > 0 and <= 4096 } text
                ? text
                : throw new ArgumentException($"{call.Op} needs \"{name}\"");

        /// <summary>The one online target of a transfer; a clear refusal for none, several, or an offline one.</summary>
        private FleetTarget TransferTarget(OperatorServices services, string client)
        {
            var targets = services.Targets(new TargetSelection { Clients = [client] });
            return targets switch
            {
                [] => throw new UnknownClientsException([client]),
                [var one] when one.DeniedReason is { } reason => throw new InvalidOperationException($"{one.Describe()}: {reason}"),
                [var one] when one.Session is null => throw new InvalidOperationException($"{one.Describe()} is offline"),
                [var one] when services.Routing?.OtherHolder(one) is { } hub => throw new InvalidOperationException(
                    $"{one.Describe()} is connected to hub {hub}; a transfer is not relayed between hubs — connect to that hub's server for it"),
                [var one] => one,
                _ => throw new ArgumentException($"'{client}' matches {targets.Count} clients; a transfer names exactly one"),
            };
        }

        /// <summary>
        /// An upload relayed to the agent: the agent says where it resumes, the operator sends the bytes from there
        /// (within the credit granted), then the whole file's SHA-256, which the agent checks against what it stored.
        /// </summary>
        private async Task<JsonElement> UploadAsync(ServerCall call, OperatorIdentity who)
        {
            var ct = call.Token;
            var args = OperatorOperations.FromElement<TransferArgs>(call.Args);
            if (args.Size < 0)
            {
                throw new ArgumentException("the size of an upload cannot be negative");
            }

            using var services = NewServices(who);
            var target = TransferTarget(services, args.Client);
            var remote = FileTransferClient.RemoteDestination(args.RemotePath, args.Name ?? "");
            using var lease = services.Guard.Begin(target.Uuid, OperationNames.UploadFile, $"{args.Name ?? "(stream)"} → {remote}");
            try
            {
                var session = target.Session!;
                await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), ct, target.Policy).ConfigureAwait(false);
                var header = new UploadParams { Path = remote, Size = args.Size, Resume = true, CreateParents = true };
                var (rpcId, readyElement) = await tunnel.StartStreamAsync(FileMethods.Upload, Wire.ToElement(header, FileJson.Default.UploadParams), ct).ConfigureAwait(false);
                var ready = Wire.FromElement(readyElement, FileJson.Default.UploadReady);
                if (ready.Offset < 0 || ready.Offset > args.Size)
                {
                    throw new ProtocolException(ProtocolError.Malformed, $"agent asked to resume at {ready.Offset} of a {args.Size}-byte file");
                }

                await SendItemAsync(call.Id, new TransferReady { Offset = ready.Offset, Size = args.Size, RemotePath = remote, Uuid = target.Uuid, DisplayName = target.DisplayName }, ct).ConfigureAwait(false);
                var left = args.Size - ready.Offset;
                var total = left;
                var window = (int)Math.Min(UploadWindow, Math.Max(left, 0));
                long granted = window;
                call.ExpectData(window);
                await SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Send, Id = call.Id, Offset = ready.Offset, Bytes = window }, ct).ConfigureAwait(false);
                var raw = tunnel.RawStream;
                while (left > 0)
                {
                    if (!await call.Data.WaitToReadAsync(ct).ConfigureAwait(false))
                    {
                        throw new ArgumentException($"the upload ended {left} bytes before its announced size");
                    }

                    while (call.Data.TryRead(out var chunk))
                    {
                        if (chunk.Length > left)
                        {
                            throw new ArgumentException("the upload sent more bytes than its announced size");
                        }

                        await raw.WriteAsync(chunk, ct).ConfigureAwait(false);
                        OperatorFrames.ReturnData(chunk);
                        left -= chunk.Length;
                        var grant = (int)Math.Min(chunk.Length, total - granted);
                        if (grant > 0)
                        {
                            granted += grant;
                            call.ExpectData(grant);
                            await SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Credit, Id = call.Id, Bytes = grant }, ct).ConfigureAwait(false);
                        }
                    }
                }

                var sha = await call.Ended.WaitAsync(TimeSpan.FromMinutes(5), ct).ConfigureAwait(false);
                if (sha is null || sha.Length != 64 || !sha.All(Uri.IsHexDigit))
                {
                    throw new ArgumentException("the upload ended without the file's SHA-256");
                }

                await Wire.WriteAsync(raw, new TransferTrailer { Sha256 = sha }, FileJson.Default.TransferTrailer, ct).ConfigureAwait(false);
                var stored = Wire.FromElement(await tunnel.ReadResponseAsync(rpcId, FileMethods.Upload, ct).ConfigureAwait(false), FileJson.Default.UploadResult);
                lease.Complete(OperationStatus.Succeeded, $"{stored.Size} bytes, sha256 {stored.Sha256[..Math.Min(12, stored.Sha256.Length)]}…{(stored.ResumedFrom > 0 ? $", resumed at {stored.ResumedFrom}" : "")}");
                return OperatorOperations.ToElement(new TransferDone { Size = stored.Size, Sha256 = stored.Sha256, RemotePath = stored.Path, ResumedFrom = stored.ResumedFrom });
            }
            catch (Exception ex)
            {
                lease.Complete(ex is OperationCanceledException ? OperationStatus.Cancelled : OperationStatus.Error, ex.Message);
                throw;
            }
        }

        /// <summary>
        /// A download relayed from the agent: from the offset the operator already holds, the bytes as data frames within
        /// the operator's credit, then the agent's SHA-256 of the whole file, which the operator checks.
        /// </summary>
        private async Task<JsonElement> DownloadAsync(ServerCall call, OperatorIdentity who)
        {
            var ct = call.Token;
            var args = OperatorOperations.FromElement<TransferArgs>(call.Args);
            if (args.Offset < 0 || args.Window is <= 0 or > MaxDownloadWindow)
            {
                throw new ArgumentException($"a download needs an offset ≥ 0 and a window of 1 to {MaxDownloadWindow} bytes");
            }

            using var services = NewServices(who);
            var target = TransferTarget(services, args.Client);
            using var lease = services.Guard.Begin(target.Uuid, OperationNames.DownloadFile, $"{args.RemotePath} → {who.Name}@{who.Source ?? "remote"}");
            try
            {
                var session = target.Session!;
                await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), ct, target.Policy).ConfigureAwait(false);
                var started = await tunnel.StartStreamAsync(FileMethods.Download, Wire.ToElement(new DownloadParams { Path = args.RemotePath, Offset = args.Offset }, FileJson.Default.DownloadParams), ct).ConfigureAwait(false);
                var ready = Wire.FromElement(started.Ready, FileJson.Default.DownloadReady);
                if (ready.Offset != args.Offset || ready.Size < ready.Offset)
                {
                    throw new ProtocolException(ProtocolError.Malformed, $"agent answered offset {ready.Offset} of {ready.Size}, expected {args.Offset}");
                }

                call.Grant(args.Window);
                await SendItemAsync(call.Id, new TransferReady { Offset = ready.Offset, Size = ready.Size, RemotePath = ready.Path, Uuid = target.Uuid, DisplayName = target.DisplayName }, ct).ConfigureAwait(false);
                var raw = tunnel.RawStream;
                // Two buffers: the next read from the agent overlaps the send of the previous chunk to the operator.
                byte[][] buffers = [new byte[OperatorFrames.PreferredDataBytes], new byte[OperatorFrames.PreferredDataBytes]];
                var which = 0;
                var sending = Task.CompletedTask;
                var left = ready.Size - ready.Offset;
                while (left > 0)
                {
                    var buffer = buffers[which];
                    var credit = await call.CreditAsync(ct).ConfigureAwait(false);
                    var want = (int)Math.Min(Math.Min(buffer.Length, left), credit);
                    var n = await raw.ReadAtLeastAsync(buffer.AsMemory(0, want), Math.Min(want, 256 * 1024), throwOnEndOfStream: false, ct).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new IOException($"the agent closed the tunnel {left} bytes before the end of the file");
                    }

                    call.Spend(n);
                    left -= n;
                    await sending.ConfigureAwait(false);
                    sending = SendDataAsync(call.Id, buffer.AsMemory(0, n), ct);
                    which ^= 1;
                }

                await sending.ConfigureAwait(false);

                var trailer = await Wire.ReadAsync(raw, FileJson.Default.TransferTrailer, 4096, ct).ConfigureAwait(false)
                    ?? throw new ProtocolException(ProtocolError.Truncated, "agent closed the tunnel before the checksum trailer");
                lease.Complete(OperationStatus.Succeeded, $"{ready.Size} bytes, sha256 {trailer.Sha256[..Math.Min(12, trailer.Sha256.Length)]}…{(ready.Offset > 0 ? $", resumed at {ready.Offset}" : "")}");
                return OperatorOperations.ToElement(new TransferDone { Size = ready.Size, Sha256 = trailer.Sha256, RemotePath = ready.Path, ResumedFrom = ready.Offset });
            }
            catch (Exception ex)
            {
                lease.Complete(ex is OperationCanceledException ? OperationStatus.Cancelled : OperationStatus.Error, ex.Message);
                throw;
            }
        }

        /// <summary>Operator management (admin); filled in with the operators' store.</summary>
        private partial Task<JsonElement> RunAdministrationAsync(ServerCall call, OperatorIdentity who);
    }
}
