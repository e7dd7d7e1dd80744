using System.Globalization;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;

using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Operations;
namespace EtPhoneHome.Hub;

/// <summary>
/// Delivers the registry's outbox to webhook receivers. Run by the hub (<c>eph-server run</c>).
/// <list type="bullet">
/// <item>At least once: an event leaves the queue only when a receiver answered 2xx or its last attempt failed;
/// an attempt cut short by a stopping hub is simply repeated by the next one.</item>
/// <item>In order per destination: a destination gets its next event only after the previous one was
/// delivered or marked failed. Destinations are served in parallel.</item>
/// <item>One sender per registry: a lease in the registry, taken in a transaction, keeps a second hub idle
/// until the first stops or dies.</item>
/// <item>Retries with exponential backoff (<see cref="WebhookOptions.RetryDelay"/>); every attempt is logged.</item>
/// </list>
/// </summary>
public sealed class WebhookDispatcher : IAsyncDisposable
{
    /// <summary>The source of the dispatcher's log entries.</summary>
    public const string LogSource = "eph-webhooks";

    private readonly IWebhookOutbox _outbox;
    private readonly ISettingsStore _settings;
    private readonly string _dataDirectory;
    private readonly WebhookOptions _options;
    private readonly IEphLog _log;
    private readonly TimeProvider _time;
    private readonly Func<string, string?>? _environment;
    private readonly WebhookSender _sender;
    private readonly string _owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private bool _warnedNoSecret;
    private bool _leader;

    /// <summary>A dispatcher of one SQLite registry's outbox, with the webhook settings of that registry.</summary>
    public WebhookDispatcher(
        SqliteRegistry registry,
        WebhookOptions? options = null,
        IEphLog? log = null,
        TimeProvider? time = null,
        Func<string, string?>? environment = null,
        HttpMessageHandler? handler = null)
        : this(registry, registry, (registry ?? throw new ArgumentNullException(nameof(registry))).DataDirectory, options, log, time, environment, handler)
    {
    }

    /// <summary>
    /// A dispatcher of <paramref name="outbox"/>'s events (with their delivery log and the dispatcher lease), configured by
    /// the webhook URL and secret of <paramref name="settings"/> (the environment wins); <paramref name="dataDirectory"/> is
    /// the registry's directory, named when it stops taking writes.
    /// </summary>
    public WebhookDispatcher(
        IWebhookOutbox outbox,
        ISettingsStore settings,
        string dataDirectory,
        WebhookOptions? options = null,
        IEphLog? log = null,
        TimeProvider? time = null,
        Func<string, string?>? environment = null,
        HttpMessageHandler? handler = null)
    {
        _outbox = outbox ?? throw new ArgumentNullException(nameof(outbox));
        _settings = settings ?? throw new ArgumentNullException(nameof(settings));
        _dataDirectory = dataDirectory ?? throw new ArgumentNullException(nameof(dataDirectory));
        _options = options ?? new WebhookOptions();
        _log = log ?? NullLog.Instance;
        _time = time ?? TimeProvider.System;
        _environment = environment;
        _sender = new WebhookSender(_options.RequestTimeout, _time, handler, _options.AllowLinkLocal);
    }

    /// <summary>Starts the background loop.</summary>
    public void Start()
    {
        if (_loop is not null)
        {
            throw new InvalidOperationException("the webhook dispatcher is already started");
        }

        _log.Information(LogSource, WebhookConfiguration.Resolve(_settings, _environment).ToString()
            + $"; up to {_options.MaxAttempts} attempts, backoff {_options.InitialBackoff.TotalSeconds:0.##} s doubling to {_options.MaxBackoff.TotalSeconds:0.##} s");
        _loop = Task.Run(() => LoopAsync(_stop.Token));
    }

    /// <summary>Stops the loop; an attempt in progress is abandoned and repeated by the next dispatcher.</summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _stop.Cancel();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        if (_leader)
        {
            try
            {
                _outbox.ReleaseWebhookLease(_owner);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _log.Warning(LogSource, $"could not release the dispatcher lease: {ex.Message}");
            }
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        var registryUnwritable = false;
        while (!ct.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                var pass = await RunOnceAsync(ct).ConfigureAwait(false);
                wait = pass.Sent > 0 ? TimeSpan.Zero : pass.NextDueIn is { } due && due < _options.PollInterval ? due : _options.PollInterval;
                if (registryUnwritable)
                {
                    registryUnwritable = false;
                    _log.Information(LogSource, "deliveries resume: the registry takes writes again");
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (RegistryFaults.IsUnwritable(ex))
            {
                // A full disk: said once (the hub says more), not once per pass; the outbox waits, nothing is lost.
                if (!registryUnwritable)
                {
                    registryUnwritable = true;
                    _log.Warning(LogSource, $"deliveries paused: {RegistryFaults.Describe(ex, _dataDirectory)}; events wait in the outbox");

                }

                wait = _options.PollInterval;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _log.Warning(LogSource, $"dispatch pass failed: {ex.Message}");
                wait = _options.PollInterval;
            }

            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// One pass over the outbox: takes the lease, marks events without a destination, and sends the oldest
    /// due event of each destination. Tests drive the dispatcher through this.
    /// </summary>
    public async Task<DispatchPass> RunOnceAsync(CancellationToken ct = default)
    {
        _leader = _outbox.TryAcquireWebhookLease(_owner, _options.LeaseDuration);
        if (!_leader)
        {
            return new DispatchPass(0, 0, null, IsLeader: false);
        }

        var config = WebhookConfiguration.Resolve(_settings, _environment);
        var pending = _outbox.ListPendingWebhookEvents(_options.BatchSize);
        var heads = new Dictionary<string, (WebhookDelivery Event, string Url)>(StringComparer.Ordinal);
        var undeliverable = 0;
        foreach (var e in pending)
        {
            var url = config.UrlFor(e.ClientWebhookUrl);
            if (url is null)
            {
                _outbox.MarkWebhookNoDestination(e.Id);
                undeliverable++;
                continue;
            }

            // Only the oldest pending event of a destination may go; the later ones wait their turn.
            heads.TryAdd(url, (e, url));
        }

        var now = _time.GetUtcNow();
        var due = heads.Values.Where(h => (h.Event.NextAttemptAt ?? h.Event.CreatedAt) <= now).ToList();
        TimeSpan? nextDueIn = heads.Values
            .Select(h => (h.Event.NextAttemptAt ?? h.Event.CreatedAt) - now)
            .Where(d => d > TimeSpan.Zero)
            .Select(d => (TimeSpan?)d)
            .Min();
        if (due.Count == 0)
        {
            return new DispatchPass(0, undeliverable, nextDueIn, IsLeader: true);
        }

        if (config.Secret is not { } secret)
        {
            if (!_warnedNoSecret)
            {
                _warnedNoSecret = true;
                _log.Warning(LogSource, $"{due.Count} event(s) wait: no webhook secret is set ({WebhookConfiguration.SecretEnvironmentVariable} or the " +
                     $"'{WebhookConfiguration.SecretSetting}' setting); deliveries are never sent unsigned");
            }

            return new DispatchPass(0, undeliverable, nextDueIn, IsLeader: true);
        }

        _warnedNoSecret = false;
        using var slots = new SemaphoreSlim(Math.Max(1, _options.MaxParallelDestinations));
        var outcomes = await Task.WhenAll(due.Select(async head =>
        {
            await slots.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                return await DeliverAsync(head.Event, head.Url, secret, ct).ConfigureAwait(false);
            }
            finally
            {
                slots.Release();
            }
        })).ConfigureAwait(false);

        // A retry scheduled in this pass may fall due before the next poll.
        foreach (var retry in outcomes.Where(o => o.RetryIn is not null).Select(o => o.RetryIn!.Value))
        {
            nextDueIn = nextDueIn is { } known && known < retry ? known : retry;
        }

        return new DispatchPass(outcomes.Count(o => o.Delivered), undeliverable, nextDueIn, IsLeader: true);
    }

    /// <summary>Sends one event and records the attempt: delivered, or when to try again (null after the last attempt).</summary>
    private async Task<(bool Delivered, TimeSpan? RetryIn)> DeliverAsync(WebhookDelivery e, string url, string secret, CancellationToken ct)
    {
        var result = await _sender.SendAsync(url, secret, e.Event, e.DeliveryId, e.Payload, ct).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        var attempt = e.Attempts + 1;
        var retry = result.Success ? null : _options.RetryDelay(attempt);
        var redacted = WebhookConfiguration.Redact(url);
        _outbox.RecordWebhookAttempt(new WebhookAttemptResult
        {
            EventId = e.Id,
            Url = redacted,
            StatusCode = result.StatusCode,
            Error = result.Error,
            DurationMs = result.DurationMs,
            Delivered = result.Success,
            RetryAt = retry is { } d ? _time.GetUtcNow() + d : null,
        });
        if (!result.Success)
        {
            _log.Warning(LogSource, retry is { } delay
                ? $"{e.Event} {e.DeliveryId} to {redacted}: attempt {attempt}/{_options.MaxAttempts} failed ({result.Error}); next in {delay.TotalSeconds.ToString("0.##", CultureInfo.InvariantCulture)} s"
                : $"{e.Event} {e.DeliveryId} to {redacted}: attempt {attempt}/{_options.MaxAttempts} failed ({result.Error}); marked failed (re-send with Send-EphWebhookDelivery or `eph-server webhooks resend {e.Id}`)");
        }

        return (result.Success, retry);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _sender.Dispose();
        _stop.Dispose();
    }
}

/// <summary>What one dispatcher pass did.</summary>
/// <param name="Sent">Events delivered (2xx) in this pass.</param>
/// <param name="NoDestination">Events marked as having no destination.</param>
/// <param name="NextDueIn">Time until the next retry falls due, when one is waiting.</param>
/// <param name="IsLeader">False when another dispatcher holds the lease (nothing was done).</param>
public sealed record DispatchPass(int Sent, int NoDestination, TimeSpan? NextDueIn, bool IsLeader);
