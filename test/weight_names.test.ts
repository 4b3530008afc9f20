// One table of weight names: kernels/weight_names.h (C++) and lib/weights.ts (TypeScript) hold
// the same names, and no C++ source outside the header spells a checkpoint module name.
import * as fs from 'fs';
import * as path from 'path';

import * as W from '../lib/weights';

const root = path.resolve(__dirname, '..');
const headerPath = path.join(root, 'kernels', 'weight_names.h');

// The header's groups (C++ namespace -> TS table) and the `kName` <-> `name` spelling.
const GROUPS: Record<string, Record<string, unknown>> = {
  vision: W.VISION_WEIGHTS,
  projector: W.PROJECTOR_WEIGHTS,
  llm: W.LLM_WEIGHTS,
  spatial_pe: W.SPATIAL_PE_WEIGHTS,
  region: W.REGION_WEIGHTS,
  mlp_module: W.MLP_MODULES,
  native_prefix: W.NATIVE_PREFIX,
};
const tsName = (k: string) => k[1].toLowerCase() + k.slice(2);

/** namespace -> { kName: value } from the header text; every `constexpr` line must parse. */
function parseHeader(text: string): Map<string, Map<string, string>> {
  const groups = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const [i, line] of text.split('\n').entries()) {
    const ns = /^namespace (\w+) \{$/.exec(line);
    if (ns && ns[1] !== 'sr3d' && ns[1] !== 'weight_names') {
      current = new Map();
      groups.set(ns[1], current);
      continue;
    }
    if (/^\}\s*\/\/ namespace/.test(line)) current = null;
    if (!line.includes('constexpr')) continue;
    const m = /^constexpr const char\* (k\w+) = "([^"]*)";$/.exec(line);
    if (!m || !current) throw new Error(`weight_names.h:${i + 1}: not a table line inside a group: ${line}`);
    current.set(m[1], m[2]);
  }
  return groups;
}

describe('weight names', () => {
  const cpp = parseHeader(fs.readFileSync(headerPath, 'utf8'));

  it('kernels/weight_names.h and lib/weights.ts hold the same groups and names', () => {
    expect([...cpp.keys()].sort()).toEqual(Object.keys(GROUPS).sort());
    for (const [group, ts] of Object.entries(GROUPS)) {
      const c = cpp.get(group)!;
      expect([group, [...c.keys()].map(tsName).sort()]).toEqual([group, Object.keys(ts).sort()]);
      for (const [k, value] of c) {
        const t = ts[tsName(k)];
        // layer(l) is the group's layer prefix, then ".<l>".
        if (typeof t === 'function') expect([group, k, (t as (l: number) => string)(17)]).toEqual([group, k, `${value}.17`]);
        else expect([group, k, t]).toEqual([group, k, value]);
      }
    }
  });

  it('no C++ source spells a checkpoint module name outside the header', () => {
    // Every checkpoint module name but the one-word ones ('projector', the region module's
    // Linear), which ordinary words and the spec's field names share.
    const names = new Set<string>();
    for (const g of ['vision', 'projector', 'llm', 'spatial_pe', 'region']) {
      for (const v of cpp.get(g)!.values()) if (/[._]/.test(v)) names.add(v);
    }
    expect(names.size).toBeGreaterThan(25);
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(cc|cu|cuh|h)$/.test(e.name) && p !== headerPath) files.push(p);
      }
    };
    for (const d of ['kernels', 'native', 'tests_cpp']) walk(path.join(root, d));
    expect(files.length).toBeGreaterThan(20);
    const hits: string[] = [];
    for (const f of files) {
      const src = fs.readFileSync(f, 'utf8').replace(/^#include .*$/gm, '');
      for (const lit of src.matchAll(/"((?:[^"\\\n]|\\.)*)"/g)) {
        // A key is dot-separated: a name counts where it stands between dots or the quotes.
        const parts = lit[1];
        for (const n of names) {
          const at = parts.indexOf(n);
          if (at < 0) continue;
          const before = at === 0 || parts[at - 1] === '.', after = at + n.length === parts.length || parts[at + n.length] === '.';
          if (before && after) hits.push(`${path.relative(root, f)}: "${parts}" spells '${n}'`);
        }
      }
    }
    expect(hits).toEqual([]);
  });
});
