import { Router } from './router';
import { sendEmpty, sendJSON } from './http';
import { readJSON } from './json-body';
import { VOLUME_SCHEDULE_BODY } from './schemas/bodies';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { VolumeScheduleService, VolumeScheduleSpec } from '../volumes/schedule';

/** berth's scheduled snapshots: /berth/v1/volumes/{name}/schedule (GET, PUT, DELETE) and /berth/v1/volume-schedules (GET). */
export function volumeScheduleRoutes(router: Router, schedules: VolumeScheduleService): void {
  router.add('GET', /^\/berth\/v1\/volume-schedules$/, async ({ res }) => sendJSON(res, 200, await schedules.list()));
  const S = /^\/berth\/v1\/volumes\/([^/]+)\/schedule$/;
  router.add('GET', S, async ({ res, params }) => sendJSON(res, 200, await schedules.get(params[0])));
  router.add('PUT', S, async ({ req, res, params }) => {
    const body = await readJSON<VolumeScheduleSpec | null>(req, VOLUME_SCHEDULE_BODY, null);
    if (!body) throw new InvalidArgumentError('a volume schedule body is required', { hint: 'send e.g. {"Every": "15m", "Keep": 24, "KeepDaily": 7}' });
    sendJSON(res, 200, await schedules.set(params[0], body));
  });
  router.add('DELETE', S, async ({ res, params }) => {
    await schedules.remove(params[0]);
    sendEmpty(res, 204);
  });
}
