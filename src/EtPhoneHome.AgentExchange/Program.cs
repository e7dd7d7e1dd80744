namespace EtPhoneHome.AgentExchange;

/// <summary>
/// eph-agent-exchange: started by eph-agent for one <c>exchange_fetch</c> or <c>exchange_put</c>. Reads one JSON request
/// line on stdin, moves the bytes, writes one JSON answer line on stdout. Closing stdin cancels the transfer.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 0 || !Console.IsInputRedirected)
        {
            Console.Error.WriteLine("eph-agent-exchange is started by eph-agent for its exchange transfers (a JSON request on stdin); it takes no arguments.");
            return 2;
        }

        using var input = Console.OpenStandardInput();
        using var output = Console.OpenStandardOutput();
        return await ExchangeHelper.RunAsync(input, output).ConfigureAwait(false);
    }
}
