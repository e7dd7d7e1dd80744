using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Logging;

/// <summary>Core's log: levels, filters, the line formats the front ends use, and escaping by construction.</summary>
public sealed class EphLogTests
{
    private static (IEphLog Log, List<EphLogEntry> Entries) Collecting()
    {
        var entries = new List<EphLogEntry>();
        return (new DelegateLog(entries.Add), entries);
    }

    [Fact]
    public void LevelFilter_LetsThroughItsLeastLevelAndAbove_AndDropsTheRest()
    {
        var (sink, entries) = Collecting();
        var log = sink.AtLeast(EphLogLevel.Warning);

        log.Trace("t", "trace");
        log.Debug("t", "debug");
        log.Information("t", "info");
        log.Warning("t", "warning");
        log.Error("t", "error");

        Assert.Equal(["warning", "error"], entries.Select(e => e.Message));
        Assert.Equal([EphLogLevel.Warning, EphLogLevel.Error], entries.Select(e => e.Level));
        Assert.False(log.IsEnabled(EphLogLevel.Information));
        Assert.True(log.IsEnabled(EphLogLevel.Error));
    }

    [Fact]
    public void LevelFilter_None_AndNullLog_LetNothingThrough()
    {
        var (sink, entries) = Collecting();
        var none = sink.AtLeast(EphLogLevel.None);

        none.Error("t", "error");
        NullLog.Instance.Error("t", "error");

        Assert.Empty(entries);
        Assert.False(none.IsEnabled(EphLogLevel.Error));
        Assert.False(NullLog.Instance.IsEnabled(EphLogLevel.Error));
    }

    [Fact]
    public void LevelFilter_DropsAnEntryWrittenToItDirectly()
    {
        var (sink, entries) = Collecting();
        var log = new LevelFilterLog(sink, EphLogLevel.Error);

        log.Write(new EphLogEntry(EphLogLevel.Warning, "t", "dropped"));
        log.Write(new EphLogEntry(EphLogLevel.Error, "t", "kept"));

        Assert.Equal("kept", Assert.Single(entries).Message);
    }

    [Fact]
    public void Entry_EscapesControlAndBidiCharacters_SoNoSinkSeesThemRaw()
    {
        var (log, entries) = Collecting();
        const string Claimed = "box\u001b[2J\n2026-01-01T00:00:00.000Z eph-hub: forged line\r\u202Egnp.exe";

        log.Warning("eph-hub", $"key SHA256:x from {Claimed} waits", new IOException($"peer said {Claimed}"));
        log.Information("src\u001b]52;c;AAAA\u0007", "ok");

        var entry = entries[0];
        foreach (var text in new[] { entry.Message, entries[1].Source })
        {
            Assert.DoesNotContain(text, c => char.IsControl(c) || c == '\u202E');
        }

        Assert.Contains(@"box\x1b[2J\x0a2026-01-01T00:00:00.000Z eph-hub: forged line\x0d\u202Egnp.exe waits", entry.Message, StringComparison.Ordinal);
        Assert.Contains(@"peer said box\x1b[2J\x0a", entry.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(entry.Exception);
    }

    [Fact]
    public void TextWriterLog_WritesOneLinePerEntry_EvenForAClaimedNameWithANewline()
    {
        var writer = new StringWriter();
        var log = new TextWriterLog(writer, TextWriterLog.Prefixed("eph-server"));

        log.Warning("guard", "client web-01\n2026-01-01 eph-server: forged");

        Assert.Equal(@"eph-server: warning: client web-01\x0a2026-01-01 eph-server: forged" + Environment.NewLine, writer.ToString());
    }

    [Fact]
    public void Prefixed_InformationIsThePlainLine_OtherLevelsNameThemselves()
    {
        var format = TextWriterLog.Prefixed("eph-server");

        Assert.Equal("eph-server: done", format(new EphLogEntry(EphLogLevel.Information, "x", "done")));
        Assert.Equal("eph-server: warning: slow", format(new EphLogEntry(EphLogLevel.Warning, "x", "slow")));
        Assert.Equal("eph-server: error: broken", format(new EphLogEntry(EphLogLevel.Error, "x", "broken")));
        Assert.Equal("eph-server: debug: detail", format(new EphLogEntry(EphLogLevel.Debug, "x", "detail")));
        Assert.Equal("eph-server: trace: more", format(new EphLogEntry(EphLogLevel.Trace, "x", "more")));
    }

    [Fact]
    public void Timestamped_NamesTheTimeTheSourceAndTheLevel()
    {
        var format = TextWriterLog.Timestamped(new ManualTime(new DateTimeOffset(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero)));

        Assert.Equal("2026-01-02T03:04:05.678Z eph-hub: client x online", format(new EphLogEntry(EphLogLevel.Information, "eph-hub", "client x online")));
        Assert.Equal("2026-01-02T03:04:05.678Z eph-webhooks: warning: paused", format(new EphLogEntry(EphLogLevel.Warning, "eph-webhooks", "paused")));
    }

    [Theory]
    [InlineData("trace", EphLogLevel.Trace)]
    [InlineData("DEBUG", EphLogLevel.Debug)]
    [InlineData("info", EphLogLevel.Information)]
    [InlineData("Information", EphLogLevel.Information)]
    [InlineData("warn", EphLogLevel.Warning)]
    [InlineData(" warning ", EphLogLevel.Warning)]
    [InlineData("error", EphLogLevel.Error)]
    [InlineData("none", EphLogLevel.None)]
    public void ParseLevel_ReadsEveryName(string text, EphLogLevel expected) => Assert.Equal(expected, EphLog.ParseLevel(text));

    [Fact]
    public void LevelFromEnvironment_OverridesTheFrontEndsDefault_OnlyWithAKnownName()
    {
        Assert.Equal(EphLogLevel.Debug, EphLog.LevelFromEnvironment(EphLogLevel.Warning, k => k == EphLog.LevelEnvironmentVariable ? "debug" : null));
        Assert.Equal(EphLogLevel.Warning, EphLog.LevelFromEnvironment(EphLogLevel.Warning, _ => "loud"));
        Assert.Equal(EphLogLevel.Information, EphLog.LevelFromEnvironment(EphLogLevel.Information, _ => null));
        Assert.Null(EphLog.ParseLevel("verbose"));
    }

    [Fact]
    public void AnEntryHasALevelFromTraceToError()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new EphLogEntry(EphLogLevel.None, "x", "y"));

    [Fact]
    public void Guard_WarnMode_IsAWarningOfTheGuard_InTheServicesLog()
    {
        using var data = new TempData();
        using var registry = SqliteRegistry.Open(data.Dir);
        var uuid = Keys.Admit(registry, Keys.A, Keys.Identity()).Uuid;
        registry.UpdateClient(uuid, new ClientUpdate { RateLimitRpm = 1 }, "tester");
        var (log, entries) = Collecting();
        using var services = new EtPhoneHome.Core.Services.OperatorServices(RegistryStores.Of(registry), new OperatorContext("alice", Surfaces.Cli), log, ownsRegistry: false);

        for (var i = 0; i < 2; i++)
        {
            using var lease = services.Guard.Begin(uuid, OperationNames.RunCommand, "true");
            lease.Complete(OperationStatus.Succeeded, exitCode: 0);
        }

        var warning = Assert.Single(entries);
        Assert.Equal((EphLogLevel.Warning, OperationGuard.LogSource), (warning.Level, warning.Source));
        Assert.Contains("warn mode: the request runs", warning.Message, StringComparison.Ordinal);
        Assert.Same(log, services.Log);
    }
}
