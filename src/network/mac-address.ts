import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Config.MacAddress (`--mac-address`): the container's own MAC on the bridge instead of the
 * one berth derives from its address. Only a bridged container has an interface to give it.
 */
export function checkMacAddress(mac: unknown, bridged: boolean): string | undefined {
  if (mac === undefined || mac === null || mac === '') return undefined;
  if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) {
    throw new InvalidArgumentError(`${JSON.stringify(mac)} is not a valid mac address (Config.MacAddress)`, { hint: 'give six hex pairs, e.g. --mac-address 02:42:ac:11:00:99' });
  }
  if (parseInt(mac.slice(0, 2), 16) & 1) {
    throw new InvalidArgumentError(`${mac} is a multicast address (Config.MacAddress)`, { hint: 'use a unicast address: the first byte even, e.g. 02:42:ac:11:00:99' });
  }
  if (!bridged) {
    throw new InvalidArgumentError('conflicting options: mac-address and the network mode (Config.MacAddress)', { hint: 'a MAC address needs the bridge network: drop --mac-address or --network' });
  }
  return mac.toLowerCase();
}
