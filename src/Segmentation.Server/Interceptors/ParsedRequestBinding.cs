using System.Reflection;
using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;

namespace Segmentation.Server.Interceptors;

/// <summary>
/// Binds every gRPC service's methods as the framework's own binder does (the generated
/// <c>BindService</c> method), with one difference: a request that is not a valid protobuf message of
/// the method's type is answered INVALID_ARGUMENT. The framework parses unary requests before any
/// interceptor runs and answers a parse failure UNKNOWN, logged as an error with a stack trace; here the
/// parser's exception becomes an <see cref="RpcException"/> the framework passes on as it is.
/// </summary>
internal sealed class ParsedRequestBinding<TService> : IServiceMethodProvider<TService>
    where TService : class
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context)
    {
        for (var type = typeof(TService); type is not null; type = type.BaseType)
        {
            if (type.GetCustomAttribute<BindServiceMethodAttribute>(inherit: false) is not { } attribute)
            {
                continue;
            }

            var bind = attribute.BindType.GetMethod(attribute.BindMethodName, BindingFlags.Public | BindingFlags.Static, [typeof(ServiceBinderBase), type])
                ?? throw new InvalidOperationException($"{attribute.BindType}.{attribute.BindMethodName} not found for {typeof(TService)}");
            bind.Invoke(null, [new Binder(context, type), null]);
            return;
        }
    }

    /// <summary>The marshaller of <typeparamref name="T"/> whose parse failures are INVALID_ARGUMENT.</summary>
    internal static Marshaller<T> Guard<T>(Marshaller<T> marshaller) => new(
        marshaller.ContextualSerializer,
        context =>
        {
            try
            {
                return marshaller.ContextualDeserializer(context);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"the request is not a valid {typeof(T).Name} protobuf message ({ex.Message})"));
            }
        });

    private static Method<TRequest, TResponse> Guarded<TRequest, TResponse>(Method<TRequest, TResponse> method) =>
        new(method.Type, method.ServiceName, method.Name, Guard(method.RequestMarshaller), method.ResponseMarshaller);

    private sealed class Binder(ServiceMethodProviderContext<TService> context, Type declaringType) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<UnaryServerMethod<TService, TRequest, TResponse>>(method.Name, [typeof(TRequest), typeof(ServerCallContext)]);
            context.AddUnaryMethod(Guarded(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<ServerStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, [typeof(TRequest), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext)]);
            context.AddServerStreamingMethod(Guarded(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<ClientStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, [typeof(IAsyncStreamReader<TRequest>), typeof(ServerCallContext)]);
            context.AddClientStreamingMethod(Guarded(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<DuplexStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, [typeof(IAsyncStreamReader<TRequest>), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext)]);
            context.AddDuplexStreamingMethod(Guarded(method), metadata, invoker);
        }

        // The service's override of the generated method, as a delegate over the instance, and its endpoint metadata.
        private (TDelegate Invoker, List<object> Metadata) Model<TDelegate>(string name, Type[] parameters)
            where TDelegate : Delegate
        {
            MethodInfo? found = null;
            for (var type = typeof(TService); type is not null && found is null; type = type.BaseType)
            {
                var candidate = type.GetMethod(name, BindingFlags.Public | BindingFlags.Instance, parameters);
                if (candidate is { IsVirtual: true } && candidate.GetBaseDefinition().DeclaringType == declaringType)
                {
                    found = candidate;
                }
            }

            if (found is null)
            {
                throw new InvalidOperationException($"could not find '{name}' on {typeof(TService)}");
            }

            List<object> metadata = [.. typeof(TService).GetCustomAttributes(inherit: true), .. found.GetCustomAttributes(inherit: true), new HttpMethodMetadata(["POST"], acceptCorsPreflight: true)];
            return ((TDelegate)Delegate.CreateDelegate(typeof(TDelegate), found), metadata);
        }
    }
}

/// <summary>Registers <see cref="ParsedRequestBinding{TService}"/> in place of the framework's binder.</summary>
internal static class ParsedRequestBindingExtensions
{
    /// <summary>Call after <c>AddGrpc</c>: every service is bound with request parsing that answers INVALID_ARGUMENT.</summary>
    public static IServiceCollection AddParsedRequestBinding(this IServiceCollection services)
    {
        var framework = services.SingleOrDefault(d => d.ServiceType == typeof(IServiceMethodProvider<>) && d.ImplementationType?.Name.StartsWith("BinderServiceMethodProvider", StringComparison.Ordinal) == true)
            ?? throw new InvalidOperationException("the gRPC framework's method binder was not found: call AddParsedRequestBinding after AddGrpc");
        services.Remove(framework);
        services.Add(ServiceDescriptor.Singleton(typeof(IServiceMethodProvider<>), typeof(ParsedRequestBinding<>)));
        return services;
    }
}
