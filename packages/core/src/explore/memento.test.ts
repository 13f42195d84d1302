import { describe, expect, it } from 'vitest';
import { createKernel } from '../kernel.js';
import { testArch } from '../testing.js';
import { Hash64 } from './hash.js';
import { Memento } from './memento.js';
import { StateWalker } from './state.js';

const KiB = 1024;

class Node {
  next: Node | null = null;
  count = 0;
  note: string | undefined = undefined;
}

function graph() {
  const a = new Node();
  const b = new Node();
  a.next = b;
  const byIndex = new Map<number, Node>([[3, a], [1, b]]);
  const names = new Set(['x', 'y']);
  const list = [a, b];
  const words = new Uint32Array([7, 8, 9]);
  const root = { a, b, byIndex, names, list, words, nan: new Map<number, string>([[Number.NaN, 'nan']]) };
  return root;
}

describe('Memento: restore writes back only what changed, with the documented semantics', () => {
  it('an unchanged graph is left as it is: same objects, same order, nothing rebuilt', () => {
    const g = graph();
    const m = Memento.take(g, [])!;
    const entriesBefore = [...g.byIndex.entries()];
    m.restore();
    expect([...g.byIndex.entries()]).toEqual(entriesBefore);
    expect(g.byIndex.get(3)).toBe(g.a);
    expect([...g.names]).toEqual(['x', 'y']);
    expect(g.list).toEqual([g.a, g.b]);
    expect(g.nan.get(Number.NaN)).toBe('nan');
  });

  it('maps, sets and arrays get their recorded entries back in the recorded order', () => {
    const g = graph();
    const m = Memento.take(g, [])!;
    // same size, same keys, but re-inserted: the order differs and must come back
    g.byIndex.delete(3);
    g.byIndex.set(3, g.a);
    g.names.delete('x');
    g.names.add('z');
    g.list.reverse();
    g.list.push(new Node());
    g.words[1] = 0;
    m.restore();
    expect([...g.byIndex.keys()]).toEqual([3, 1]);
    expect([...g.names]).toEqual(['x', 'y']);
    expect(g.list).toEqual([g.a, g.b]);
    expect(g.list.length).toBe(2);
    expect([...g.words]).toEqual([7, 8, 9]);
  });

  it('fields added or deleted since the snapshot: the recorded keys come back in order, undefined values included', () => {
    const g = graph();
    const m = Memento.take(g, [])!;
    const a = g.a as unknown as Record<string, unknown>;
    a.extra = 1;
    delete a.note; // recorded as undefined: must exist again after restore
    a.count = 5;
    g.b.next = g.a; // a plain field change
    m.restore();
    expect(Object.keys(a)).toEqual(['next', 'count', 'note']);
    expect('note' in a).toBe(true);
    expect(a.count).toBe(0);
    expect(g.b.next).toBeNull();
  });

  it('a kernel run further and restored hashes as it did at the snapshot, and runs the same again', () => {
    const k = createKernel({ arch: testArch(), kernel: 'v6.15' });
    k.run(k.mmap({ anon: true, length: 2 * 4 * KiB, write: true, as: 'buf' }));
    const walker = new StateWalker(k);
    const hash = (): string => {
      const h = new Hash64();
      walker.hashKernel(h);
      return h.digest().join(':');
    };
    const m = Memento.take(k, [k.container])!;
    const atSnapshot = hash();
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    const afterWrite = hash();
    expect(afterWrite).not.toBe(atSnapshot);
    m.restore();
    expect(hash()).toBe(atSnapshot);
    // restoring twice (the second finds nothing changed) is the same state
    m.restore();
    expect(hash()).toBe(atSnapshot);
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    expect(hash()).toBe(afterWrite);
  });
});
