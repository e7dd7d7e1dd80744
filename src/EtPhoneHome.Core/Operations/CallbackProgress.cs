namespace EtPhoneHome.Core.Operations;

/// <summary>
/// An <see cref="IProgress{T}"/> that calls its callback synchronously on the reporting thread, in order
/// (unlike <see cref="Progress{T}"/>, which posts to a captured context). Surfaces wrap their own reporting
/// in it, so they need not implement a Core-typed interface themselves.
/// </summary>
public sealed class CallbackProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
