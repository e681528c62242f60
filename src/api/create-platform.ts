import { NotFoundError } from '../../volumes/shared/errors';
import { parsePlatform, platformString } from '../images/registry/manifest';
import type { ImageService } from '../images/service';

/**
 * POST /containers/create?platform=os/arch[/variant] (API 1.41), as Docker reads it: the
 * image must be held for that platform. An image held for another one is NOT_FOUND (404),
 * so the docker CLI (and berth's) pulls that platform's image and creates again; a
 * malformed platform is INVALID_ARGUMENT. The variant is compared only when both name one.
 */
export async function checkCreatePlatform(images: Pick<ImageService, 'inspect'>, image: string | undefined, platform: string | null): Promise<void> {
  if (!platform) return;
  const want = parsePlatform(platform);
  if (!image) return; // the body's own check says what is missing
  const held = await images.inspect(image).catch((e) => {
    if (e instanceof NotFoundError) return undefined; // create says "No such image", as without platform
    throw e;
  });
  if (!held) return;
  const variant = (held as { Variant?: string }).Variant;
  const actual = { os: held.Os, architecture: held.Architecture, ...(variant ? { variant } : {}) };
  if (actual.os === want.os && actual.architecture === want.architecture && (!want.variant || !actual.variant || want.variant === actual.variant)) return;
  throw new NotFoundError(`image with reference ${image} was found but does not match the specified platform: wanted ${platformString(want)}, actual: ${platformString(actual)}`, {
    hint: `pull it for that platform (berth pull --platform ${platformString(want)} ${image}), or leave out --platform`,
  });
}
