using EtPhoneHome.Core.Registry;
using System.CommandLine;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Mcp;
using EtPhoneHome.Server;
using EtPhoneHome.Tests.Unit.Mcp;
using EtPhoneHome.Tests.Unit.Operations;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Logging;

/// <summary>Each front end routes Core's log to its native channel: the CLI's and stdio MCP's to stderr, never stdout.</summary>
public sealed class FrontEndLogRoutingTests
{
    [Fact]
    public async Task Verb_LogsItsWarningsToStderr_WithALevelPrefix_AndStdoutKeepsOnlyItsOutput()
    {
        var registry = new FakeFleet();
        var output = new StringWriter();
        var error = new StringWriter();
        // A Core part of the verb's services warns, with a claimed name holding an escape sequence and a newline.
        EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir, IEphLog log)
        {
            var services = new EtPhoneHome.Core.Services.OperatorServices(registry.Stores(), OperatorContext.ForSurface(Surfaces.Cli), log, ownsRegistry: false);
            services.Guard.Log.Warning(OperationGuard.LogSource, "client \u001b[31mweb-01\nforged: over its limit");
            services.Guard.Log.Information(OperationGuard.LogSource, "below the verb's least level");
            return services;
        }

        var exit = await Program.BuildRoot(Services).Parse(["keys", "--json", "--data", "/nonexistent"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = error });

        Assert.Equal(0, exit);
        Assert.Equal(string.Empty, output.ToString());
        Assert.Equal(@"eph-server: warning: client \x1b[31mweb-01\x0aforged: over its limit" + Environment.NewLine, error.ToString());
    }

    [Fact]
    public void VerbLog_HonoursTheLevelOfTheEnvironment()
    {
        var error = new StringWriter();
        var log = CliLog.ForVerb(error, k => k == EphLog.LevelEnvironmentVariable ? "info" : null);

        log.Information("guard", "shown");
        log.Debug("guard", "not shown");

        Assert.Equal("eph-server: shown" + Environment.NewLine, error.ToString());
    }

    [Fact]
    public void DaemonLog_KeepsTheHubsLines_AndPrefixesWarnings()
    {
        var error = new StringWriter();
        var log = CliLog.ForDaemon(error, _ => null, new EtPhoneHome.Tests.Unit.Registry.ManualTime(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero)));

        log.Information("eph-hub", "hub listening on /srv/eph/hub.sock");
        log.Warning("eph-webhooks", "deliveries paused");
        log.Debug("eph-hub", "not shown by default");

        Assert.Equal(
            "2026-01-02T03:04:05.000Z eph-hub: hub listening on /srv/eph/hub.sock" + Environment.NewLine +
            "2026-01-02T03:04:05.000Z eph-webhooks: warning: deliveries paused" + Environment.NewLine,
            error.ToString());
    }

    [Fact]
    public async Task StdioMcp_LogsGoToTheLogWriter_AndTheProtocolStreamCarriesOnlyJsonRpc()
    {
        var registry = new FakeFleet();
        registry.AddClient("11111111-aaaa", "web-01", true, 40001, "web");
        var transport = new FakeTransport();
        transport.Throw("web-01", new IOException("connection refused \u001b[2J\nforged line"));
        var log = new StringWriter();
        await using var fleet = new McpFleet(registry.Stores(), null, transport, EphLogLoggerProvider.CreateFactory(McpLog.ForStdio(log, EphLogLevel.Warning)));
        var toServer = new Pipe();
        var toClient = new Pipe();
        var protocol = new MemoryStream();
        using var stop = new CancellationTokenSource();
        var server = Task.Run(() => EphMcpServer.RunStreamAsync(fleet, toServer.Reader.AsStream(), new TeeStream(toClient.Writer.AsStream(), protocol), stop.Token));
        await using (var client = await McpClient.CreateAsync(new StreamClientTransport(toServer.Writer.AsStream(), toClient.Reader.AsStream())))
        {
            (await client.CallAsync("run_command", new { cmd = "uptime", client_id = "web-01" })).Error("CLIENT_UNREACHABLE");
        }

        await stop.CancelAsync();
        await server.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);

        var line = Assert.Single(log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries), l => l.Contains("tunnel request failed", StringComparison.Ordinal));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ eph-mcp warning \[\w+\] ", line);
        Assert.Contains(@"connection refused \x1b[2J\x0aforged line", line, StringComparison.Ordinal);
        var sent = Encoding.UTF8.GetString(protocol.ToArray());
        Assert.DoesNotContain("tunnel request failed", sent, StringComparison.Ordinal);
        foreach (var message in sent.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var json = JsonDocument.Parse(message);
            Assert.Equal("2.0", json.RootElement.GetProperty("jsonrpc").GetString());
        }
    }

    /// <summary>Writes to the client's pipe and keeps a copy of everything the server sent.</summary>
    private sealed class TeeStream(Stream inner, Stream copy) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (copy)
            {
                copy.Write(buffer, offset, count);
            }

            inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (copy)
            {
                copy.Write(buffer.Span);
            }

            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
