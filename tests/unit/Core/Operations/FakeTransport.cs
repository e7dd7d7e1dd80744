using System.Collections.Concurrent;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>
/// A transport whose per-target behaviour the test scripts. Targets without a script answer at once with
/// exit 0. Concurrency is measured, and gates let a test hold a target until it decides.
/// </summary>
internal sealed class FakeTransport : ICommandTransport
{
    private readonly ConcurrentDictionary<string, Func<CancellationToken, Task<RunCommandResult>>> _scripts = new();
    private int _running;
    private int _maxRunning;
    private int _calls;

    public ConcurrentQueue<string> Called { get; } = new();
    public int MaxConcurrency => Volatile.Read(ref _maxRunning);
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Completes each time a call starts; tests await it instead of sleeping.</summary>
    public event Action<string>? Started;

    public static RunCommandResult Exit(int code, string stdout = "", bool timedOut = false) => new()
    {
        ExitCode = code,
        Stdout = stdout,
        Stderr = code == 0 ? "" : "boom",
        DurationMs = 1,
        TimedOut = timedOut,
        Truncated = false,
    };

    public void Script(string displayName, Func<CancellationToken, Task<RunCommandResult>> script) => _scripts[displayName] = script;

    public void Answer(string displayName, RunCommandResult result) => Script(displayName, _ => Task.FromResult(result));

    public void Throw(string displayName, Exception ex) => Script(displayName, _ => Task.FromException<RunCommandResult>(ex));

    /// <summary>The target waits for <paramref name="gate"/>, honouring cancellation.</summary>
    public void Hold(string displayName, Task gate, RunCommandResult? result = null) =>
        Script(displayName, async ct =>
        {
            await gate.WaitAsync(ct);
            return result ?? Exit(0);
        });

    public async Task<RunCommandResult> RunAsync(FleetTarget target, RunCommandParams parameters, CancellationToken ct)
    {
        Interlocked.Increment(ref _calls);
        Called.Enqueue(target.DisplayName);
        var now = Interlocked.Increment(ref _running);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, now, seen) != seen)
        {
        }

        try
        {
            Started?.Invoke(target.DisplayName);
            var script = _scripts.GetValueOrDefault(target.DisplayName) ?? (_ => Task.FromResult(Exit(0, target.DisplayName)));
            return await script(ct);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }
}
