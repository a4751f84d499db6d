using System.Collections.Frozen;

namespace Segmentation.Server.Security;

/// <summary>
/// The scope each RPC requires. Every method is listed explicitly; a method that is not listed needs
/// <see cref="ApiScope.Admin"/> (deny by default). Health checks and server reflection are open.
/// </summary>
public static class MethodScopes
{
    private static readonly FrozenDictionary<string, ApiScope> Table = new Dictionary<string, ApiScope>(StringComparer.Ordinal)
    {
        // Decisions, and the bare RPC load tests compare them with: it must pay the same authentication.
        ["/segmentation.v1.DecisionService/Decide"] = ApiScope.Decide,
        ["/segmentation.v1.DecisionService/DecideBatch"] = ApiScope.Decide,
        ["/segmentation.v1.DiagnosticsService/Echo"] = ApiScope.Decide,
        ["/segmentation.v1.DiagnosticsService/EchoStream"] = ApiScope.Ingest, // the baseline of StreamEvents pays its authentication

        // Ingestion. GetProfile reads personal data, but storefronts need it: decide, not admin.
        ["/segmentation.v1.ProfileService/TrackEvent"] = ApiScope.Ingest,
        ["/segmentation.v1.ProfileService/TrackEvents"] = ApiScope.Ingest,
        ["/segmentation.v1.ProfileService/StreamEvents"] = ApiScope.Ingest,
        ["/segmentation.v1.ProfileService/Identify"] = ApiScope.Ingest,
        ["/segmentation.v1.ProfileService/SetTraits"] = ApiScope.Ingest,
        ["/segmentation.v1.ProfileService/GetProfile"] = ApiScope.Decide,

        // Outcomes are written by the systems that ingest (storefront, email platform, order system); KPIs are read with the read scope (analysts, dashboards).
        ["/segmentation.v1.OutcomeService/RecordOutcomes"] = ApiScope.Ingest,
        ["/segmentation.v1.InsightsService/GetKpis"] = ApiScope.Read,
        ["/segmentation.v1.InsightsService/GetSegmentSizes"] = ApiScope.Read,
        ["/segmentation.v1.InsightsService/GetDataQuality"] = ApiScope.Read,

        // Experiments: results are read by admins like KPIs; stopping and promoting publish a catalog version.
        ["/segmentation.v1.ExperimentService/ListExperiments"] = ApiScope.Read,
        ["/segmentation.v1.ExperimentService/GetExperimentResults"] = ApiScope.Read,
        ["/segmentation.v1.ExperimentService/StopExperiment"] = ApiScope.Admin,
        ["/segmentation.v1.ExperimentService/PromoteExperiment"] = ApiScope.Admin,

        // Catalog governance, reads and writes alike.
        ["/segmentation.v1.CatalogService/GetCatalog"] = ApiScope.Read,
        ["/segmentation.v1.CatalogService/ValidateCatalog"] = ApiScope.Read,
        ["/segmentation.v1.CatalogService/PublishCatalog"] = ApiScope.Admin,
        ["/segmentation.v1.CatalogService/RollbackCatalog"] = ApiScope.Admin,
        ["/segmentation.v1.CatalogService/ListSegments"] = ApiScope.Read,
        ["/segmentation.v1.CatalogService/ListSegmentMembers"] = ApiScope.Watch, // how a stream consumer resynchronises
        ["/segmentation.v1.CatalogService/PreviewSegment"] = ApiScope.Read,
        ["/segmentation.v1.CatalogService/AuditCatalog"] = ApiScope.Read,
        ["/segmentation.v1.CatalogService/WatchSegmentChanges"] = ApiScope.Watch, // a workflow engine needs the stream, not admin

        // Privacy: consent is recorded by the same systems that ingest; reading, erasing and exporting a user is admin.
        ["/segmentation.v1.PrivacyService/RecordConsent"] = ApiScope.Ingest,
        ["/segmentation.v1.PrivacyService/GetConsent"] = ApiScope.Admin,
        ["/segmentation.v1.PrivacyService/ForgetUser"] = ApiScope.Admin,
        ["/segmentation.v1.PrivacyService/ExportUser"] = ApiScope.Admin,
        ["/segmentation.v1.PrivacyService/StreamUserExport"] = ApiScope.Admin,

        // The admin audit trail names who acted on which user: admin only.
        ["/segmentation.v1.AuditService/ListAuditEntries"] = ApiScope.Admin,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly string[] OpenServices = ["/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/"];

    /// <summary>The methods with an explicit scope.</summary>
    public static IEnumerable<string> Mapped => Table.Keys;

    /// <summary>
    /// The scope <paramref name="method"/> (<c>/package.Service/Method</c>) requires, or
    /// <see cref="ApiScope.None"/> for the open health and reflection services.
    /// </summary>
    public static ApiScope Required(string method)
    {
        if (Table.TryGetValue(method, out var scope))
        {
            return scope;
        }

        foreach (var open in OpenServices)
        {
            if (method.StartsWith(open, StringComparison.Ordinal))
            {
                return ApiScope.None;
            }
        }

        return ApiScope.Admin;
    }
}
