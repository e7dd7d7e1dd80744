using Amazon.Runtime;
using Amazon.S3;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>Direct access to a test bucket, as someone holding the store's keys (or the store itself) would have.</summary>
internal static class RawBucket
{
    public static AmazonS3Client Client(S3TestServer server) => new(new BasicAWSCredentials(S3TestServer.AccessKey, S3TestServer.SecretKey), new AmazonS3Config
    {
        ServiceURL = server.Endpoint.ToString(),
        ForcePathStyle = true,
        AuthenticationRegion = "auto",
        UseHttp = true,
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });
}
