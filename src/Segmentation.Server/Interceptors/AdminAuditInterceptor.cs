using System.Globalization;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Audit;
using Segmentation.Server.Security;

namespace Segmentation.Server.Interceptors;

/// <summary>
/// Records every administrative call in the <see cref="AdminAuditTrail"/> when it ends: the caller's key name, the
/// action, its outcome (OK or the status code) and the user it concerned. The outermost interceptor, so it sees the
/// status the caller sees. Calls refused before it (for a missing scope, for the key's rate) never reach it: the
/// authentication middleware and the rate limiter record those (<see cref="AuditedMethods.RecordRefusal"/>).
/// </summary>
internal sealed class AdminAuditInterceptor(AdminAuditTrail trail, ILogger<AdminAuditInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (AuditedMethods.ActionOf(RoutedMethod.Of(context), context.Caller()) is not { } action)
        {
            return await continuation(request, context);
        }

        return await RecordedAsync(context, action, request, () => continuation(request, context));
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        // An export in parts is the same action as one in a document: recorded when it ends, however it ends.
        var action = AuditedMethods.Action(RoutedMethod.Of(context));
        if (action is null)
        {
            await continuation(request, responseStream, context);
            return;
        }

        await RecordedAsync<object?>(context, action, request, async () =>
        {
            await continuation(request, responseStream, context);
            return null;
        });
    }

    // Runs the call and records how it ended: the status the caller sees (the error mapper inside has turned every
    // failure into one) and, when it succeeded, what it returned.
    private async Task<T> RecordedAsync<T>(ServerCallContext context, string action, object request, Func<Task<T>> call)
    {
        T result;
        try
        {
            result = await call();
        }
        catch (RpcException ex)
        {
            Record(context, action, AuditedMethods.OutcomeName(ex.StatusCode), request, null);
            throw;
        }

        Record(context, action, "OK", request, result);
        return result;
    }

    private void Record(ServerCallContext context, string action, string outcome, object? request, object? response)
    {
        try
        {
            trail.Record(context.Caller().Name, action, outcome, AuditedMethods.UserOf(request), AuditedMethods.Detail(request, response));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The action happened; failing the call now would make a client retry an action that succeeded.
            logger.LogError("An audit entry for {Action} could not be written: {Reason}", action, ex.Message);
        }
    }
}

/// <summary>Which methods are audited, under which action name, and what of each request and response an entry keeps.</summary>
public static class AuditedMethods
{
    private static readonly Dictionary<string, string> Actions = new(StringComparer.Ordinal)
    {
        ["/segmentation.v1.CatalogService/PublishCatalog"] = "catalog.publish",
        ["/segmentation.v1.CatalogService/RollbackCatalog"] = "catalog.rollback",
        ["/segmentation.v1.ExperimentService/StopExperiment"] = "experiment.stop",
        ["/segmentation.v1.ExperimentService/PromoteExperiment"] = "experiment.promote",
        ["/segmentation.v1.PrivacyService/ExportUser"] = "privacy.export",
        ["/segmentation.v1.PrivacyService/StreamUserExport"] = "privacy.export",
        ["/segmentation.v1.PrivacyService/ForgetUser"] = "privacy.forget",
        ["/segmentation.v1.PrivacyService/GetConsent"] = "privacy.get_consent",
        ["/segmentation.v1.PrivacyService/RecordConsent"] = RecordConsent,
    };

    /// <summary>The action of consent recorded on a user's behalf (audited for admin keys only).</summary>
    public const string RecordConsent = "privacy.record_consent";

    /// <summary>
    /// The action of a call of <paramref name="method"/> by <paramref name="caller"/>, or null when it is not audited.
    /// Consent recorded by the systems that ingest (banners, preference centres) is the user's own act, kept in their
    /// consent trail; the audit trail records consent changed on a user's behalf by an admin key.
    /// </summary>
    public static string? ActionOf(string method, ApiCaller caller) =>
        Action(method) is { } action && (action != RecordConsent || (caller.Scopes & ApiScope.Admin) != 0) ? action : null;

    /// <summary>
    /// Records a call of <paramref name="action"/> refused before it ran (<see cref="AdminAuditTrail.RecordRefusal"/>).
    /// A trail that cannot be written is logged: the refusal stands either way.
    /// </summary>
    internal static void RecordRefusal(AdminAuditTrail trail, ILogger logger, string actor, string action, string outcome, string detail)
    {
        try
        {
            trail.RecordRefusal(actor, action, outcome, detail);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError("An audit entry for {Action} could not be written: {Reason}", action, ex.Message);
        }
    }

    /// <summary>The action name of an audited method, or null.</summary>
    public static string? Action(string method) => Actions.GetValueOrDefault(method);

    /// <summary>
    /// The status code as an entry names it, as in the gRPC specification (<c>INVALID_ARGUMENT</c>, <c>OUT_OF_RANGE</c>,
    /// <c>DATA_LOSS</c>): the enum member's words in upper snake case, for every code.
    /// </summary>
    public static string OutcomeName(StatusCode code) =>
        code == StatusCode.OK ? "OK" : string.Concat(code.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : char.ToUpperInvariant(c).ToString()));

    /// <summary>The user an action concerned; never for an erasure, whose point is that the id is gone.</summary>
    public static string? UserOf(object? request) => request switch
    {
        ExportUserRequest r => Bounded(r.UserId),
        StreamUserExportRequest r => Bounded(r.UserId),
        GetConsentRequest r => Bounded(r.UserId),
        RecordConsentRequest r => Bounded(r.UserId),
        _ => null,
    };

    /// <summary>What an entry says besides who, what and whom: versions, comments, experiment, purpose. No personal data.</summary>
    public static string Detail(object? request, object? response) => (request, response) switch
    {
        (PublishCatalogRequest q, PublishCatalogResponse r) => Invariant($"version {r.Version}; {q.Files.Count} files; comment: {q.Comment}"),
        (PublishCatalogRequest q, _) => Invariant($"{q.Files.Count} files; comment: {q.Comment}"),
        (RollbackCatalogRequest, RollbackCatalogResponse r) => Invariant($"version {r.Version} restores version {r.RestoredFrom}"),
        (RollbackCatalogRequest q, _) => q.Version != 0 ? Invariant($"to version {q.Version}") : "to the previous version",
        (StopExperimentRequest q, StopExperimentResponse r) => Invariant($"experiment {Bounded(q.ExperimentId)}; version {r.CatalogVersion}; comment: {q.Comment}"),
        (StopExperimentRequest q, _) => $"experiment {Bounded(q.ExperimentId)}",
        (PromoteExperimentRequest q, PromoteExperimentResponse r) => Invariant($"experiment {Bounded(q.ExperimentId)}; arm {r.ArmId}; version {r.CatalogVersion}; comment: {q.Comment}"),
        (PromoteExperimentRequest q, _) => $"experiment {Bounded(q.ExperimentId)}; arm {Bounded(q.ArmId)}",
        (ForgetUserRequest, ForgetUserResponse r) => Invariant($"existed: {r.Existed}; linked ids erased: {r.LinkedIds.Count}"),
        (RecordConsentRequest q, _) => $"purpose {q.Purpose}; granted: {q.Granted}; source: {Bounded(q.Source)}",
        _ => "",
    };

    private static string Bounded(string text) => Segmentation.Core.Validation.InputLimits.Bounded(text, 256);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
