// End-to-end client in another language: loads the public protos at run time with
// @grpc/proto-loader, calls the real server with @grpc/grpc-js, and prints one JSON
// object with what it saw. Usage: node client.mjs 127.0.0.1:5107 <user_id> [api_key]
// The API key (sent as x-api-key metadata on every call) defaults to $SEGMENTATION_API_KEY,
// then to the documented local development key.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, '../../../protos');
// google/api/annotations.proto (the HTTP/JSON routes the protos declare) ships with protobufjs.
const googleApiRoot = path.resolve(here, 'node_modules/protobufjs');
const [address = '127.0.0.1:5107', userId = '12415', apiKey = process.env.SEGMENTATION_API_KEY || 'dev-local-key-change-me'] = process.argv.slice(2);

const definition = protoLoader.loadSync(
  ['segmentation/v1/decision_service.proto', 'segmentation/v1/catalog_service.proto', 'segmentation/v1/profile_service.proto'],
  { includeDirs: [protoRoot, googleApiRoot], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).segmentation.v1;
const credentials = grpc.credentials.createInsecure();
const decisions = new v1.DecisionService(address, credentials);
const catalog = new v1.CatalogService(address, credentials);

const call = (client, method, request) =>
  new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    const metadata = new grpc.Metadata();
    metadata.set('x-api-key', apiKey);
    client[method](request, metadata, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });

const result = {};
try {
  const cat = await call(catalog, 'GetCatalog', {});
  result.catalog = { version: cat.version, segments: cat.segments.length, fallback: cat.fallback_segment_id };

  const d = (await call(decisions, 'Decide', {
    user_id: userId,
    channel: 'CHANNEL_WEB',
    context: { device: 'mobile', country: 'GB', page_type: 'home' },
  })).decision;
  result.decision = {
    segment: d.segment.id,
    type: d.segment.type,
    content: d.content.text,
    offer: d.offer.text,
    cta: d.cta.text,
    journey: d.journey.text,
    messaging: d.messaging.text,
    catalog_version: d.catalog_version,
    matched: d.matched_segments.map((m) => `${m.segment.id}:${m.status}`),
  };

  // A page render that records its product views in the same call: the decision sees them.
  const visitor = `node-${Date.now()}-${process.pid}`;
  const seconds = Math.floor(Date.now() / 1000);
  const views = [0, 1, 2, 3, 4].map((i) => ({
    event_id: `${visitor}-view-${i}`,
    type: 'product_view',
    timestamp: { seconds: seconds - 60 + i, nanos: 0 },
    context: { source: 'web', device: 'mobile', session_id: `${visitor}-s`, page_type: 'product' },
    product_id: `sku-${i}`,
  }));
  const tracked = await call(decisions, 'Decide', { user_id: visitor, context: { device: 'mobile', page_type: 'product' }, events: views });
  result.tracked = { segment: tracked.decision.segment.id, events: tracked.event_results.map((r) => r.status) };

  try {
    await call(decisions, 'Decide', {});
    result.invalid = 'no error';
  } catch (err) {
    result.invalid = { code: err.code, codeName: grpc.status[err.code], details: err.details };
  }
  console.log(JSON.stringify(result));
} catch (err) {
  console.error(`call failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  decisions.close();
  catalog.close();
}
