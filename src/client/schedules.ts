import { Transport } from './transport';
import type { VolumeSchedule, VolumeScheduleService, VolumeScheduleSpec } from '../volumes/schedule';

const enc = encodeURIComponent;

/** The VolumeScheduleService over the socket. */
export class RemoteVolumeSchedules implements VolumeScheduleService {
  constructor(private t: Transport) {}

  get(volume: string): Promise<VolumeSchedule> {
    return this.t.json('GET', `/berth/v1/volumes/${enc(volume)}/schedule`);
  }
  list(): Promise<VolumeSchedule[]> {
    return this.t.json('GET', '/berth/v1/volume-schedules');
  }
  set(volume: string, spec: VolumeScheduleSpec): Promise<VolumeSchedule> {
    return this.t.json('PUT', `/berth/v1/volumes/${enc(volume)}/schedule`, { body: spec });
  }
  async remove(volume: string): Promise<void> {
    (await this.t.request('DELETE', `/berth/v1/volumes/${enc(volume)}/schedule`)).resume();
  }
}
