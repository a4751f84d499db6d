using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Segmentation.Server.Hosting;

/// <summary>Options validated at start by a list of problems, each named in the failure (Validate's one message names none).</summary>
internal static class OptionsProblems
{
    /// <summary>Fails the options with every text <paramref name="problems"/> gives; valid when it gives none.</summary>
    public static OptionsBuilder<TOptions> ValidateProblems<TOptions>(this OptionsBuilder<TOptions> builder, Func<TOptions, IEnumerable<string>> problems)
        where TOptions : class
    {
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>>(new Validator<TOptions>(builder.Name, problems)));
        return builder;
    }

    private sealed class Validator<TOptions>(string name, Func<TOptions, IEnumerable<string>> problems) : IValidateOptions<TOptions>
        where TOptions : class
    {
        public ValidateOptionsResult Validate(string? optionsName, TOptions options) =>
            optionsName is not null && optionsName != name ? ValidateOptionsResult.Skip
            : problems(options).ToList() is { Count: > 0 } found ? ValidateOptionsResult.Fail(found)
            : ValidateOptionsResult.Success;
    }
}
