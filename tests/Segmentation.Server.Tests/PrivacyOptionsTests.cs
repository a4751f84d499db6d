using Segmentation.Server.Hosting;

namespace Segmentation.Server.Tests;

/// <summary>How the privacy settings are read.</summary>
public sealed class PrivacyOptionsTests
{
    [Fact]
    public void A_retention_age_set_under_an_upper_case_event_type_applies_to_that_type()
    {
        // Regression (review): a configuration key keeps the case it was given in, and an environment variable such as
        // SEGMENTATION__PRIVACY__RETENTION__EVENTTYPES__PAGE_VIEW is upper case: the age went to "PAGE_VIEW", no event
        // has that type, and page views were kept for the default 730 days.
        var options = new PrivacyOptions();
        options.Retention.EventTypes["PAGE_VIEW"] = TimeSpan.FromDays(1);

        Assert.Empty(options.Problems());
        Assert.Equal(TimeSpan.FromDays(1), options.ToRetentionPolicy().For("page_view"));

        options.Retention.EventTypes["page_view"] = TimeSpan.FromDays(2);
        Assert.Contains(options.Problems(), p => p.Contains("names page_view twice", StringComparison.Ordinal));
    }
}
