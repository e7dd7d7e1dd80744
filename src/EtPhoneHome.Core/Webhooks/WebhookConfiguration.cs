using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Webhooks;

/// <summary>
/// The global webhook destination and signing secret. Each comes from the registry setting when it is set
/// (<c>webhook_url</c>, <c>webhook_secret</c>: changeable at run time from any operator process, read again on
/// every dispatcher pass), else from the environment (<c>ETPHONEHOME_WEBHOOK_URL</c>,
/// <c>ETPHONEHOME_WEBHOOK_SECRET</c>) of the process that sends. A client's own webhook URL overrides the
/// global URL; an empty one means "use the global one".
/// </summary>
public sealed class WebhookConfiguration
{
    public const string UrlSetting = "webhook_url";
    public const string SecretSetting = "webhook_secret";
    public const string UrlEnvironmentVariable = "ETPHONEHOME_WEBHOOK_URL";
    public const string SecretEnvironmentVariable = "ETPHONEHOME_WEBHOOK_SECRET";

    private WebhookConfiguration(string? globalUrl, string? secret)
    {
        GlobalUrl = globalUrl;
        Secret = secret;
    }

    /// <summary>The global URL; null when none is configured.</summary>
    public string? GlobalUrl { get; }

    /// <summary>The signing secret. Never logged, never shown.</summary>
    internal string? Secret { get; }

    public bool HasSecret => Secret is not null;

    /// <summary>Reads the settings, then the environment (<paramref name="environment"/> replaces it in tests).</summary>
    public static WebhookConfiguration Resolve(ISettingsStore registry, Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        environment ??= Environment.GetEnvironmentVariable;
        return new WebhookConfiguration(
            NonEmpty(registry.GetSetting(UrlSetting)) ?? NonEmpty(environment(UrlEnvironmentVariable)),
            NonEmpty(registry.GetSetting(SecretSetting)) ?? NonEmpty(environment(SecretEnvironmentVariable)));
    }

    /// <summary>Where an event of a client with <paramref name="clientUrl"/> goes; null = nowhere.</summary>
    public string? UrlFor(string? clientUrl) => NonEmpty(clientUrl) ?? GlobalUrl;

    /// <summary>Only absolute http and https URLs are destinations.</summary>
    public static bool IsValidUrl(string? url, out string? error)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            error = "the webhook URL is empty";
            return false;
        }

        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            error = $"webhook URL '{Redact(url)}' is not an absolute http or https URL";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>A URL fit for logs and output: user info and query string removed (either may carry a token).</summary>
    public static string Redact(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri))
        {
            var cut = url.IndexOfAny(['?', '#']);
            var text = cut < 0 ? url : url[..cut] + "?…";
            var at = text.LastIndexOf('@');
            return at < 0 ? text : "…@" + text[(at + 1)..];
        }

        var builder = new UriBuilder(uri) { UserName = "", Password = "", Fragment = "" };
        var query = builder.Query.Length > 0;
        builder.Query = "";
        var result = builder.Uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);
        return query ? result + "?…" : result;
    }

    public override string ToString() => $"webhooks: url {(GlobalUrl is null ? "(none)" : Redact(GlobalUrl))}, secret {(HasSecret ? "set" : "not set")}";

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
