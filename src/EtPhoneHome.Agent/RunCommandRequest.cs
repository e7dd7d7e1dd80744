using System.Globalization;
using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>Validates <c>run_command</c> parameters and turns them into a <see cref="CommandSpec"/>.</summary>
public static class RunCommandRequest
{
    public static CommandSpec ToSpec(JsonElement? parameters, long defaultMaxOutputBytes, PathPolicy paths)
    {
        if (parameters is not { ValueKind: JsonValueKind.Object } element)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object with at least cmd");
        }

        if (!element.TryGetProperty("cmd", out var cmdElement) || cmdElement.ValueKind != JsonValueKind.String
            || string.IsNullOrWhiteSpace(cmdElement.GetString()))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "cmd is required (a non-empty string)");
        }

        RunCommandParams p;
        try
        {
            p = element.Deserialize(ProtocolJson.Default.RunCommandParams)
                ?? throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object");
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : "params";
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"{field} has the wrong type");
        }

        var timeout = p.TimeoutS ?? CommandLimits.DefaultTimeoutSeconds;
        if (timeout is < CommandLimits.MinTimeoutSeconds or > CommandLimits.MaxTimeoutSeconds)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"timeout_s must be between {CommandLimits.MinTimeoutSeconds} and {CommandLimits.MaxTimeoutSeconds} seconds (got {timeout})"));
        }

        var maxOutput = p.MaxOutputBytes ?? defaultMaxOutputBytes;
        if (maxOutput < 1 || maxOutput > RpcServer.MaxOutputCapLimit)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"max_output_bytes must be between 1 and {RpcServer.MaxOutputCapLimit} (got {maxOutput})"));
        }

        var cwd = p.Cwd;
        if (string.IsNullOrEmpty(cwd))
        {
            cwd = paths.IsUnrestricted ? null : paths.DefaultDirectory
                ?? throw new RpcFault(RpcErrorCodes.PathDenied, "no working directory is allowed on this agent");
        }
        else if (!paths.IsAllowed(cwd))
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"cwd is outside the allowed paths: {cwd}");
        }

        return new CommandSpec
        {
            Command = p.Cmd,
            WorkingDirectory = cwd,
            Environment = p.Env,
            Stdin = p.Stdin,
            Timeout = TimeSpan.FromSeconds(timeout),
            MaxOutputBytes = maxOutput,
        };
    }
}
