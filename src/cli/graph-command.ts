import { Option, type Command } from 'commander';
import { loadStateGraph, type StateGraph } from '../core/state-graph.ts';
import { print } from './format.ts';
import { operatorContext, withOperatorDb } from './operator-db.ts';

// A Mermaid state-diagram label runs to the end of the line and may not contain ':' or ';'
// (the lexer's DESCR token); Mermaid decodes #NN; entities before parsing.
const mermaidLabel = (s: string) =>
  s
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[#;:]/g, (c) => `#${c.charCodeAt(0)};`);
const dotString = (s: string) => `"${s.replace(/\s+/g, ' ').trim().replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function mermaid(g: StateGraph): string {
  const lines = ['stateDiagram-v2'];
  for (const s of g.statuses.filter((x) => x.is_initial)) lines.push(`    [*] --> ${s.status}`);
  for (const t of g.transitions) lines.push(`    ${t.from_status} --> ${t.to_status}: ${mermaidLabel(t.description)}`);
  for (const s of g.statuses.filter((x) => x.is_terminal)) lines.push(`    ${s.status} --> [*]`);
  return lines.join('\n');
}

export function dot(g: StateGraph): string {
  const lines = [
    'digraph seller_transfer_status {',
    '    rankdir=LR;',
    '    node [shape=box, style=rounded, fontname="Helvetica"];',
    '    edge [fontname="Helvetica", fontsize=10];',
    '    "[*]" [shape=point, width=0.2];',
    '    "[*] end" [shape=doublecircle, label="", width=0.15];',
  ];
  for (const s of g.statuses)
    lines.push(`    ${dotString(s.status)} [tooltip=${dotString(s.description)}${s.is_terminal ? ', peripheries=2' : ''}];`);
  for (const s of g.statuses.filter((x) => x.is_initial)) lines.push(`    "[*]" -> ${dotString(s.status)};`);
  for (const t of g.transitions)
    lines.push(`    ${dotString(t.from_status)} -> ${dotString(t.to_status)} [label=${dotString(t.description)}];`);
  for (const s of g.statuses.filter((x) => x.is_terminal)) lines.push(`    ${dotString(s.status)} -> "[*] end";`);
  lines.push('}');
  return lines.join('\n');
}

export function registerGraphCommand(program: Command): void {
  program
    .command('graph')
    .description('print the state diagram from the statuses and transitions tables (Mermaid stateDiagram-v2 or Graphviz DOT)')
    .addOption(new Option('--format <format>', 'output format').choices(['mermaid', 'dot']).default('mermaid'))
    .action(async (opts: { format: 'mermaid' | 'dot' }) => {
      const { config, logger } = operatorContext();
      await withOperatorDb(config, logger, async (db) => {
        const graph = await loadStateGraph(db);
        print(opts.format === 'dot' ? dot(graph) : mermaid(graph));
      });
    });
}
