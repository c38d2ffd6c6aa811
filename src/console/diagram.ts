// The state diagram as coordinates for views/diagram.eta (an inline SVG): laid out from the
// database's statuses and transitions, so a status or move added by a migration shows up here
// without touching this file. Column = shortest distance from an initial status; row = order
// of the statuses table within the column.
import type { StateGraph } from '../core/state-graph.ts';

export interface DiagramNode {
  status: string;
  description: string;
  x: number;
  y: number;
  terminal: boolean;
  initial: boolean;
  count: string;
}
export interface DiagramEdge {
  from: string;
  to: string;
  description: string;
  path: string;
}
export interface Diagram {
  width: number;
  height: number;
  nodes: DiagramNode[];
  edges: DiagramEdge[];
  nodeWidth: number;
  nodeHeight: number;
}

const W = 170,
  H = 46,
  GAP_X = 70,
  GAP_Y = 34,
  PAD = 16;

export function layoutDiagram(g: StateGraph, counts: Map<string, string>): Diagram {
  const depth = new Map<string, number>();
  let frontier = g.statuses.filter((s) => s.is_initial).map((s) => s.status);
  frontier.forEach((s) => depth.set(s, 0));
  for (let d = 1; frontier.length; d++) {
    const next = g.transitions.filter((t) => frontier.includes(t.from_status) && !depth.has(t.to_status)).map((t) => t.to_status);
    for (const s of next) depth.set(s, d);
    frontier = [...new Set(next)];
  }
  const unreachable = Math.max(0, ...depth.values()) + 1;
  const rowOf = new Map<number, number>();
  const nodes = g.statuses.map((s) => {
    const col = depth.get(s.status) ?? unreachable;
    const row = rowOf.get(col) ?? 0;
    rowOf.set(col, row + 1);
    return {
      status: s.status,
      description: s.description,
      terminal: s.is_terminal,
      initial: s.is_initial,
      count: counts.get(s.status) ?? '',
      x: PAD + col * (W + GAP_X),
      y: PAD + row * (H + GAP_Y),
    };
  });
  const at = new Map(nodes.map((n) => [n.status, n]));
  const edges = g.transitions.map((t) => {
    const a = at.get(t.from_status)!,
      b = at.get(t.to_status)!;
    let path: string;
    if (a.x === b.x) {
      // Same column: an arc on the right-hand side.
      const x = a.x + W,
        y1 = a.y + H / 2,
        y2 = b.y + H / 2;
      path = `M ${x} ${y1} C ${x + 40} ${y1}, ${x + 40} ${y2}, ${x + 4} ${y2}`;
    } else {
      const [x1, y1] = [a.x + W, a.y + H / 2];
      const [x2, y2] = [b.x - 4, b.y + H / 2];
      path = `M ${x1} ${y1} C ${(x1 + x2) / 2} ${y1}, ${(x1 + x2) / 2} ${y2}, ${x2} ${y2}`;
    }
    return { from: t.from_status, to: t.to_status, description: t.description, path };
  });
  const width = Math.max(...nodes.map((n) => n.x + W)) + PAD + 40;
  const height = Math.max(...nodes.map((n) => n.y + H)) + PAD;
  return { width, height, nodes, edges, nodeWidth: W, nodeHeight: H };
}
