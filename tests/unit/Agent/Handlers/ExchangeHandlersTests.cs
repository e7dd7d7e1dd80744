using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Agent;
using EtPhoneHome.AgentExchange;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>
/// exchange_fetch / exchange_put through eph-agent-exchange, the helper process that does the agent's HTTP(S) (the test
/// output holds it, as out/bin does next to eph-agent), against a small HTTP server on 127.0.0.1.
/// </summary>
[Collection(nameof(ExchangeHelperCollection))]
public sealed class ExchangeHandlersTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("eph-agent-exchange-");
    private readonly PathPolicy _open = new(null, null);

    public void Dispose() => _dir.Delete(recursive: true);

    private string P(string name) => Path.Combine(_dir.FullName, name);

    [Fact]
    public async Task Fetch_DownloadsThroughTheHelper_AndVerifiesTheSha256()
    {
        var bytes = RandomNumberGenerator.GetBytes(300_000);
        using var server = new TinyHttpServer(_ => (200, bytes));
        var sha = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

        var result = Wire.FromElement(await ExchangeHandlers.FetchAsync(
            Wire.ToElement(new ExchangeFetchParams { Url = server.Url + "?X-Amz-Signature=secret", Path = P("got.bin"), Sha256 = sha, Size = bytes.Length }, ExchangeJson.Default.ExchangeFetchParams),
            _open, CancellationToken.None), ExchangeJson.Default.ExchangeFetchResult);

        Assert.Equal(bytes, File.ReadAllBytes(P("got.bin")));
        Assert.Equal(sha, result.Sha256);
        Assert.True(result.Verified);
        Assert.Equal(P("got.bin"), result.Path);
    }

    [Fact]
    public async Task Fetch_WithTheWrongSha256_IsAChecksumMismatch_AndWritesNothing()
    {
        using var server = new TinyHttpServer(_ => (200, "not what you expected"u8.ToArray()));

        var fault = await Assert.ThrowsAsync<RpcFault>(() => ExchangeHandlers.FetchAsync(
            Wire.ToElement(new ExchangeFetchParams { Url = server.Url, Path = P("bad.bin"), Sha256 = new string('0', 64) }, ExchangeJson.Default.ExchangeFetchParams),
            _open, CancellationToken.None));

        Assert.Equal(ExchangeErrorCodes.ChecksumMismatch, fault.Code);
        Assert.False(File.Exists(P("bad.bin")));
    }

    [Fact]
    public async Task Fetch_RefusedByTheStorage_IsATransferFailure_WithoutTheUrlsSignature()
    {
        using var server = new TinyHttpServer(_ => (403, "denied"u8.ToArray()));

        var fault = await Assert.ThrowsAsync<RpcFault>(() => ExchangeHandlers.FetchAsync(
            Wire.ToElement(new ExchangeFetchParams { Url = server.Url + "?X-Amz-Signature=topsecret", Path = P("no.bin") }, ExchangeJson.Default.ExchangeFetchParams),
            _open, CancellationToken.None));

        Assert.Equal(ExchangeErrorCodes.TransferFailed, fault.Code);
        Assert.Contains("403", fault.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("topsecret", fault.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Put_UploadsThroughTheHelper_AndAnswersSizeAndSha256()
    {
        var bytes = RandomNumberGenerator.GetBytes(200_000);
        File.WriteAllBytes(P("up.bin"), bytes);
        byte[]? received = null;
        using var server = new TinyHttpServer(body => { received = body; return (200, []); });

        var result = Wire.FromElement(await ExchangeHandlers.PutAsync(
            Wire.ToElement(new ExchangePutParams { Url = server.Url, Path = P("up.bin") }, ExchangeJson.Default.ExchangePutParams),
            _open, CancellationToken.None), ExchangeJson.Default.ExchangePutResult);

        Assert.Equal(bytes, received);
        Assert.Equal(bytes.Length, result.Size);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant(), result.Sha256);
    }

    [Fact]
    public async Task CancellingAFetch_StopsIt_WithoutWritingTheDestination()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var server = new TinyHttpServer(_ => (200, []), stallAfter: 1000, onStall: () => arrived.TrySetResult());
        using var cts = new CancellationTokenSource();

        var fetch = ExchangeHandlers.FetchAsync(
            Wire.ToElement(new ExchangeFetchParams { Url = server.Url, Path = P("slow.bin") }, ExchangeJson.Default.ExchangeFetchParams),
            _open, cts.Token);
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fetch);
        Assert.False(File.Exists(P("slow.bin")));
    }

    [Fact]
    public async Task WithoutTheHelper_ATransferFails_NamingIt()
    {
        var saved = ExchangeHandlers.HelperPath;
        ExchangeHandlers.HelperPath = P("missing/eph-agent-exchange");
        try
        {
            File.WriteAllText(P("up.bin"), "x");
            var fault = await Assert.ThrowsAsync<RpcFault>(() => ExchangeHandlers.PutAsync(
                Wire.ToElement(new ExchangePutParams { Url = "http://127.0.0.1:9/x", Path = P("up.bin") }, ExchangeJson.Default.ExchangePutParams),
                _open, CancellationToken.None));

            Assert.Equal(ExchangeErrorCodes.TransferFailed, fault.Code);
            Assert.Contains("eph-agent-exchange", fault.Message, StringComparison.Ordinal);
        }
        finally
        {
            ExchangeHandlers.HelperPath = saved;
        }
    }

    [Fact]
    public async Task TheHelper_RefusesARequestItCannotRead()
    {
        using var input = new MemoryStream("{\"method\":\"exchange_fetch\",\"url\":\"ftp://x/y\",\"path\":\"/tmp/z\"}\n"u8.ToArray());
        using var output = new MemoryStream();

        var code = await ExchangeHelper.RunAsync(input, output);

        Assert.Equal(2, code);
        var answer = JsonSerializer.Deserialize(Encoding.UTF8.GetString(output.ToArray()).Trim(), ExchangeJson.Default.ExchangeHelperResponse);
        Assert.Equal(ExchangeHelperErrors.InvalidRequest, answer?.Error);
    }

    /// <summary>One-route HTTP/1.1 server: answers every request with the status and body the handler returns for the request body.</summary>
    private sealed class TinyHttpServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();

        private readonly int _stallAfter;
        private readonly Action? _onStall;

        /// <param name="stallAfter">When set: announce a body of twice that many bytes, send that many, then send nothing more.</param>
        public TinyHttpServer(Func<byte[], (int Status, byte[] Body)> handler, int stallAfter = 0, Action? onStall = null)
        {
            _stallAfter = stallAfter;
            _onStall = onStall;
            _listener.Start();
            Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/bucket/object";
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient client;
                    try
                    {
                        client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    }
                    catch (Exception)
                    {
                        return;
                    }

                    _ = Task.Run(() => ServeAsync(client, handler, _stallAfter, _onStall, _stop.Token));
                }
            });
        }

        public string Url { get; }

        private static async Task ServeAsync(TcpClient client, Func<byte[], (int Status, byte[] Body)> handler, int stallAfter, Action? onStall, CancellationToken stop)
        {
            using (client)
            {
                var stream = client.GetStream();
                var head = new List<byte>();
                while (head.Count < 4 || !(head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
                {
                    var b = stream.ReadByte();
                    if (b < 0)
                    {
                        return;
                    }

                    head.Add((byte)b);
                }

                var lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n");
                var length = lines.Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    .Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                var body = new byte[length];
                await stream.ReadExactlyAsync(body);
                if (stallAfter > 0)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {stallAfter * 2}\r\n\r\n"));
                    await stream.WriteAsync(new byte[stallAfter]);
                    await stream.FlushAsync();
                    onStall?.Invoke();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, stop);
                    }
                    catch (OperationCanceledException)
                    {
                    }

                    return;
                }

                var (status, reply) = handler(body);
                var response = Encoding.ASCII.GetBytes($"HTTP/1.1 {status} X\r\nContent-Length: {reply.Length}\r\nConnection: close\r\n\r\n");
                await stream.WriteAsync(response);
                await stream.WriteAsync(reply);
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}

/// <summary>The helper path is a static the missing-helper test swaps: these tests run one at a time.</summary>
[CollectionDefinition(nameof(ExchangeHelperCollection), DisableParallelization = true)]
public sealed class ExchangeHelperCollection;
