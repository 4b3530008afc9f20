// Answers cross-checked by geometry: which questions ask for a metric quantity, and the
// comparison of the answer's number with a measurement (synthetic and on the real cabinet).
import * as path from 'path';

import { crossCheck, metricQuestion } from '../lib/check';
import { measure } from '../lib/measure';
import type { MeasureResult } from '../lib/measure';
import { loadScene } from '../lib/scene';

const measured: MeasureResult = {
  units: 'm',
  regions: [
    { id: 'region0', points: 100, height: 0.5, length: 0.8, width: 0.4, centroid: [0, 0, 0.25], coverage: [0.1] },
    { id: 'region1', points: 50, height: 0.1, length: 0.5, width: 0.5, centroid: [0, 1, 0.05], coverage: [0.1] },
  ],
  pairs: [{ a: 'region0', b: 'region1', centroidDistance: 1.02, gap: 0.6 }],
};

describe('metricQuestion', () => {
  it.each([
    ['How tall is <region0>?', 'height', [0]],
    ['What is the height of <region1>?', 'height', [1]],
    ['How wide is <region0>?', 'width', [0]],
    ['How long is <region0>?', 'length', [0]],
    ['How far is <region0> from <region1>?', 'distance', [0, 1]],
    ['What is the distance between <region1> and <region0>?', 'distance', [1, 0]],
    ['How big is the gap between <region0> and <region1>?', 'gap', [0, 1]],
  ])('%s → %s', (q, quantity, regions) => {
    expect(metricQuestion(q)).toEqual({ quantity, regions });
  });
  it.each([
    'Is <region0> taller than <region1>?',
    'Which is wider, <region0> or <region1>?',
    'What color is <region0>?',
    'How tall is it?', // no region
    'How far is <region0>?', // a distance needs two regions
  ])('%s → null', (q) => {
    expect(metricQuestion(q)).toBeNull();
  });
});

describe('crossCheck', () => {
  it('agrees within a factor 1.25, disagrees beyond it', () => {
    expect(crossCheck('How tall is <region0>?', 'About 55 cm.', measured)).toEqual({
      quantity: 'height', regions: [0], answered: 0.55, measured: 0.5, ratio: expect.closeTo(1.1, 12), agrees: true,
    });
    const off = crossCheck('How tall is <region0>?', 'It is 1.5 meters tall.', measured)!;
    expect(off.ratio).toBeCloseTo(3, 12);
    expect(off.agrees).toBe(false);
  });
  it('pairs: centroid distance or gap, in either order', () => {
    expect(crossCheck('How far is <region1> from <region0>?', '1 m', measured)).toMatchObject({ quantity: 'distance', measured: 1.02, agrees: true });
    expect(crossCheck('What is the gap between <region0> and <region1>?', '2 feet', measured)).toMatchObject({ quantity: 'gap', measured: 0.6, answered: expect.closeTo(0.6096, 12), agrees: true });
  });
  it('no number in the answer: checked, not agreeing', () => {
    expect(crossCheck('How wide is <region0>?', 'I cannot tell.', measured)).toMatchObject({ answered: null, ratio: Infinity, agrees: false });
  });
  it('not a metric question: null', () => {
    expect(crossCheck('Is <region0> taller than <region1>?', 'Yes', measured)).toBeNull();
  });
  it('the bundled cabinet: the annotation\'s height agrees with the depth', async () => {
    const scene = await loadScene(path.join(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet', 'scene.json'));
    const m = await measure(scene, [{ box3d: { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 } }]);
    const c = crossCheck('How tall is <region0>?', 'The cabinet is 0.545 m tall.', m)!;
    expect(c.measured).toBeGreaterThan(0.5);
    expect(c.agrees).toBe(true);
    expect(crossCheck('How tall is <region0>?', '2 meters', m)!.agrees).toBe(false);
  });
});
