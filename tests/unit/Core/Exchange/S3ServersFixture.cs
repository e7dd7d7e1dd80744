using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>A strict and a lenient s3rver on 127.0.0.1 shared by the tests of a class, stopped by PID afterwards.</summary>
public sealed class S3ServersFixture : IAsyncLifetime
{
    private readonly S3ServerPair _pair = new();

    public S3TestServer Strict => _pair.Strict;
    public S3TestServer Lenient => _pair.Lenient;

    public Task InitializeAsync() => _pair.StartAsync();

    public Task DisposeAsync() => _pair.DisposeAsync().AsTask();
}
