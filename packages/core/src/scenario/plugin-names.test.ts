import { describe, expect, it } from 'vitest';
import { parseScenario } from './load.js';
import { unknownPluginName } from './plugin-names.js';

const BUILT_INS = { arch: ['x86', 'arm64', 'ppc-hash', 's390'], fs: ['xfs', 'ext4', 'fuse'], driver: ['nvdimm', 'devdax', 'hmm'] };

const scenario = (body: string) => parseScenario(`name: s\n${body}`, 'dir/s.yaml');

describe('arch, fs and driver names a scenario uses', () => {
  it('a third-party plugin may be named wherever a built-in may, once it is in the catalog', () => {
    const s = scenario(
      [
        'kernel: { arch: riscv64, fs: myfs, driver: mydrv }',
        'setup:',
        '  - probe: { driver: mydrv, size: 1GiB, as: d0 }',
        '  - mount: { device: d0, fs: myfs }',
        'steps:',
        '  - spawn: { as: p }',
        '    when: { fs: [myfs, xfs] }',
        'expect:',
        '  - when: { arch: riscv64, driver: mydrv }',
        '    violations: none',
      ].join('\n'),
    );
    expect(unknownPluginName(s, { arch: [...BUILT_INS.arch, 'riscv64'], fs: [...BUILT_INS.fs, 'myfs'], driver: [...BUILT_INS.driver, 'mydrv'] })).toBeNull();
    // the same file with those plugins not loaded: the first name is reported, with its field
    expect(unknownPluginName(s, BUILT_INS)).toBe(
      "dir/s.yaml: kernel.arch: no arch plugin is named 'riscv64' (known: x86, arm64, ppc-hash, s390; a third-party plugin must be in the catalog: daxlab --plugin or a config file's plugins list)",
    );
  });

  it('a misspelt name in a when rule is an error, not a rule that silently never applies', () => {
    const s = scenario('steps:\n  - spawn: { as: p }\nexpect:\n  - violations: none\n  - when: { fs: ext3 }\n    outcome: blocked\n');
    expect(unknownPluginName(s, BUILT_INS)).toMatch(/^dir\/s\.yaml: expect\[1\]\.when\.fs: no fs plugin is named 'ext3'; did you mean 'ext4'\?/);
  });

  it('steps: their when, mount.fs and probe.driver', () => {
    expect(unknownPluginName(scenario('steps:\n  - spawn: { as: p }\n    when: { driver: nvdim }\n'), BUILT_INS)).toMatch(/steps\[0\]\.when\.driver: no driver plugin is named 'nvdim'; did you mean 'nvdimm'\?/);
    expect(unknownPluginName(scenario('setup:\n  - probe: { size: 1GiB, as: d0 }\n  - mount: { device: d0, fs: xfz }\nsteps:\n  - spawn: { as: p }\n'), BUILT_INS)).toMatch(/setup\[1\]\.mount\.fs: no fs plugin is named 'xfz'; did you mean 'xfs'\?/);
    expect(unknownPluginName(scenario('setup:\n  - probe: { driver: dev-dax, size: 1GiB, as: d0 }\nsteps:\n  - spawn: { as: p }\n'), BUILT_INS)).toMatch(/setup\[0\]\.probe\.driver: no driver plugin is named 'dev-dax'; did you mean 'devdax'\?/);
  });

  it('a built-in name the catalog lacks is not an error: rules about it just do not apply', () => {
    const s = scenario('steps:\n  - spawn: { as: p }\nexpect:\n  - when: { fs: fuse, arch: s390 }\n    outcome: blocked\n');
    expect(unknownPluginName(s, { arch: ['x86'], fs: ['xfs'], driver: [] })).toBeNull();
  });
});
