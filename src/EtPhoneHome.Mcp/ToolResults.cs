using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Registry;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;

namespace EtPhoneHome.Mcp;

/// <summary>
/// How every tool answers: one JSON text block (snake_case, nulls left out). Failures become tool errors
/// (<c>isError: true</c>) with <c>{error, message, recovery_hint, …}</c>, the shape of the reference's
/// errors; exceptions that are not the tools' own are logged to stderr and answered as INTERNAL without
/// their text.
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

    /// <summary>Runs a synchronous tool body with the shared error mapping.</summary>
    public static CallToolResult Run(McpFleet fleet, string tool, Func<object> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunAsync(fleet, tool, () => Task.FromResult(body())).GetAwaiter().GetResult();
    }

    /// <summary>Runs a tool body and maps its failures (see the class remarks).</summary>
    public static async Task<CallToolResult> RunAsync(McpFleet fleet, string tool, Func<Task<object>> body)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(body);
        try
        {
            return Success(await body().ConfigureAwait(false));
        }
        catch (ToolFailure failure)
        {
            return Error(failure);
        }
        catch (RegistryValidationException invalid)
        {
            // The registry's own messages name the field and the limit and carry no internals.
            return Error(ToolFailure.Invalid(invalid.Field, invalid.Message.Split(" (Parameter", 2)[0]));
        }
        catch (OperationCanceledException)
        {
            throw; // the SDK answers a cancelled request itself
        }
        catch (Exception ex)
        {
            fleet.Logger.LogError(ex, "tool {Tool} failed", tool);
            return Error(new ToolFailure(ToolErrorCodes.Internal, $"{tool} failed unexpectedly", "Try again; if it keeps failing, check the MCP server's log (stderr)."));
        }
    }
}
