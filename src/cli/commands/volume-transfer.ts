import type { Command } from 'commander';
import { connect } from '../context';
import { credentialsFor } from '../credentials';
import { humanSize } from '../format';
import { transferDisplay } from '../transfer-progress';
import { RemoteVolumeTransfers } from '../../client/volume-transfers';
import { parseReference } from '../../images/reference';

/**
 * `berth volume push VOLUME[@SNAPSHOT] REF` and `berth volume pull REF [VOLUME]`: volume
 * snapshots through an OCI registry (src/volumes/transfers.ts). Credentials come from the
 * docker CLI's config.json as for `berth pull`/`push`; progress is drawn as theirs is.
 */
export function volumeTransferCommands(volume: Command): void {
  volume
    .command('push <VOLUME[@SNAPSHOT]> <REF>')
    .description('push a snapshot of a volume to a registry, as an OCI artifact; later pushes to the same REF send only what changed')
    .option('-q, --quiet', 'no progress: print only the result line')
    .addHelpText(
      'after',
      `
Without @SNAPSHOT, berth takes a fresh snapshot first, the way 'berth volume snapshot'
does (containers that use the volume are frozen for the instant), and pushes that: a push
always ships what the volume holds now. Name a snapshot to push one you took (e.g. with
--pre 'redis-cli save' for an application-consistent one).

The first push to a REF sends the whole tree as one layer. Each later push of a newer
snapshot of the same volume adds one layer holding only the changes since the snapshot
pushed last (changed files, and whiteouts for deletions); the older layers stay in the
registry. The last line says how many bytes went over the network.

Credentials are the docker CLI's (berth login / docker login); registries on 127.0.0.1 and
those given to the daemon with --insecure-registry may use plain HTTP.

Examples:
  berth volume push pgdata 127.0.0.1:5000/backups/pgdata:latest
  berth volume snapshot pgdata nightly && berth volume push pgdata@nightly registry.example.com/team/pgdata:nightly
  berth volume pull registry.example.com/team/pgdata:nightly pgdata-copy    (on another host)`,
    )
    .action(async (source: string, ref: string, o: { quiet?: boolean }, cmd: Command) => {
      const at = source.indexOf('@');
      const [name, snap] = at < 0 ? [source, undefined] : [source.slice(0, at), source.slice(at + 1) || undefined];
      const r = parseReference(ref);
      const ctx = await connect(cmd);
      const display = o.quiet ? undefined : transferDisplay();
      const res = await new RemoteVolumeTransfers(ctx.transport).push(name, snap, ref, { auth: credentialsFor(r.domain), progress: display?.onMessage });
      display?.done();
      process.stdout.write(`${res.tag}: digest: ${res.digest} snapshot: ${name}@${res.snapshot} layers: ${res.layers} sent: ${res.sent} bytes (${humanSize(res.sent)})\n`);
    });

  volume
    .command('pull <REF> [VOLUME]')
    .description('pull a volume pushed with `berth volume push` into VOLUME (default: the name it was pushed from), with its snapshots')
    .option('-q, --quiet', 'no progress: print only the volume name')
    .addHelpText(
      'after',
      `
A new VOLUME is made with one snapshot per pushed layer, the newest one's files in it. A
VOLUME that already holds the first snapshots of the chain gets only the layers after
them (only those are fetched). An existing volume that holds none of them is never
overwritten (ALREADY_EXISTS: pull into a new name), nor one a running container uses
(CONFLICT, naming the containers: stop them first). Every blob is checked against its
digest; a pull that fails leaves no volume behind, and pulling again resumes a download
that was cut short from the bytes already on disk.

Examples:
  berth volume pull 127.0.0.1:5000/backups/pgdata:latest
  berth volume pull registry.example.com/team/pgdata:nightly pgdata-copy`,
    )
    .action(async (ref: string, name: string | undefined, o: { quiet?: boolean }, cmd: Command) => {
      const r = parseReference(ref);
      const ctx = await connect(cmd);
      const display = o.quiet ? undefined : transferDisplay();
      const res = await new RemoteVolumeTransfers(ctx.transport).pull(ref, name, { auth: credentialsFor(r.domain), progress: display?.onMessage });
      display?.done();
      if (o.quiet) return void process.stdout.write(res.volume + '\n');
      const snaps = res.snapshots.length ? `new snapshots: ${res.snapshots.join(' ')}` : 'up to date';
      process.stdout.write(`${res.volume}: ${snaps}; fetched: ${res.fetched} bytes (${humanSize(res.fetched)})\n`);
    });
}
