using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Registry;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp;

/// <summary>
/// How every tool answers: one JSON text block (snake_case, nulls left out), and for tools with an output schema the
/// same object as structured content. Failures become tool errors (<c>isError: true</c>) with
/// <c>{error, message, recovery_hint, …}</c>, the shape of the reference's errors, in one filter
/// (<see cref="ErrorFilter"/>); exceptions that are not the tools' own are logged to stderr and answered as INTERNAL
/// without their text.
/// </summary>
public static class ToolResults
{
    /// <summary>snake_case; only what JSON requires is escaped, so command output stays readable.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static CallToolResult Success(object value) => new()
    {
        Content = [new TextContentBlock { Text = JsonSerializer.Serialize(value, Json) }],
        IsError = false,
    };

    public static CallToolResult Error(ToolFailure failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var body = new Dictionary<string, object?>
        {
            ["error"] = failure.Code,
            ["message"] = failure.Message,
            ["recovery_hint"] = failure.Hint,
        };
        foreach (var (key, value) in failure.Details ?? new Dictionary<string, object?>())
        {
            body[key] = value;
        }

        return new CallToolResult
        {
            Content = [new TextContentBlock { Text = JsonSerializer.Serialize(body, Json) }],
            IsError = true,
        };
    }

    /// <summary>
    /// The one place tool failures become answers: wraps the call-tool pipeline of every session (stdio and HTTP) so a
    /// tool body only returns its result or throws. <see cref="ToolFailure"/> is the documented error object; a
    /// <see cref="RegistryValidationException"/> is INVALID_ARGUMENT naming the field; cancellation and the SDK's protocol
    /// errors (an unknown tool) are left to the SDK; anything else is logged to stderr and answered as INTERNAL without
    /// its text.
    /// </summary>
    public static McpRequestFilter<CallToolRequestParams, CallToolResult> ErrorFilter(McpFleet fleet)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        return next => async (request, cancellationToken) =>
        {
            try
            {
                return await next(request, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not (OperationCanceledException or McpProtocolException))
            {
                return Map(fleet, request.Params?.Name ?? "tool", ex);
            }
        };
    }

    /// <summary>The answer for an exception a tool threw (see <see cref="ErrorFilter"/>).</summary>
    public static CallToolResult Map(McpFleet fleet, string tool, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        switch (exception)
        {
            case ToolFailure failure:
                return Error(failure);
            case Core.Remote.OperatorRemoteException remote:
                return Error(RemoteOnly.Failure(remote));
            case Core.Remote.RemoteConnectionException lost:
                return Error(new ToolFailure(ToolErrorCodes.ServerUnreachable, lost.Message,
                    "The next call reconnects; if it keeps failing, check the server, the ssh key and the pinned host key (eph-server connect)."));
            case RegistryValidationException invalid:
                // The registry's own messages name the field and the limit and carry no internals.
                return Error(ToolFailure.Invalid(invalid.Field, invalid.Message.Split(" (Parameter", 2)[0]));
            default:
                fleet.Logger.LogError(exception, "tool {Tool} failed", tool);
                return Error(new ToolFailure(ToolErrorCodes.Internal, $"{tool} failed unexpectedly", "Try again; if it keeps failing, check the MCP server's log (stderr)."));
        }
    }
}
