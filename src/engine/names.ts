import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Container ids and names, as Docker makes them: ids are 64 hex digits (never all
 * digits, so a short id is never read as a number); names match
 * [a-zA-Z0-9][a-zA-Z0-9_.-]* and, when none is given, are adjective_surname pairs.
 */

// Docker's rule is [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters at least); berth also takes a
// one-character name (`--name w`): a strict superset, so every Docker name still works.
const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function newContainerId(): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d+$/.test(id.slice(0, 12))) return id;
  }
}

/** `name` without its leading '/', checked against Docker's rule. */
export function validateName(name: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new InvalidArgumentError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, {
      hint: 'start with a letter or digit; then letters, digits, _ . -',
    });
  }
  return name.startsWith('/') ? name.slice(1) : name;
}

const LEFT = [
  'admiring', 'agitated', 'amazing', 'angry', 'awesome', 'blissful', 'bold', 'boring', 'brave', 'busy',
  'charming', 'clever', 'compassionate', 'competent', 'confident', 'cool', 'cranky', 'dazzling', 'determined', 'distracted',
  'dreamy', 'eager', 'ecstatic', 'elastic', 'elated', 'elegant', 'eloquent', 'epic', 'exciting', 'fervent',
  'festive', 'flamboyant', 'focused', 'friendly', 'frosty', 'funny', 'gallant', 'gifted', 'goofy', 'gracious',
  'great', 'happy', 'hardcore', 'heuristic', 'hopeful', 'hungry', 'infallible', 'inspiring', 'intelligent', 'interesting',
  'jolly', 'jovial', 'keen', 'kind', 'laughing', 'loving', 'lucid', 'magical', 'modest', 'musing',
  'mystifying', 'naughty', 'nervous', 'nice', 'nifty', 'nostalgic', 'objective', 'optimistic', 'peaceful', 'pedantic',
  'pensive', 'practical', 'priceless', 'quirky', 'quizzical', 'recursing', 'relaxed', 'reverent', 'romantic', 'sad',
  'serene', 'sharp', 'silly', 'sleepy', 'stoic', 'strange', 'stupefied', 'suspicious', 'sweet', 'tender',
  'thirsty', 'trusting', 'unruffled', 'upbeat', 'vibrant', 'vigilant', 'vigorous', 'wizardly', 'wonderful', 'youthful',
  'zealous', 'zen',
];

const RIGHT = [
  'agnesi', 'albattani', 'allen', 'archimedes', 'babbage', 'banach', 'bardeen', 'bell', 'benz', 'bhabha',
  'black', 'bohr', 'booth', 'borg', 'bose', 'brahmagupta', 'brown', 'buck', 'burnell', 'cannon',
  'carson', 'cerf', 'chandrasekhar', 'clarke', 'curie', 'darwin', 'davinci', 'diffie', 'dijkstra', 'dirac',
  'driscoll', 'dubinsky', 'easley', 'einstein', 'elbakyan', 'elgamal', 'elion', 'engelbart', 'euclid', 'euler',
  'faraday', 'feistel', 'fermat', 'fermi', 'feynman', 'franklin', 'galileo', 'gates', 'goldberg', 'goldstine',
  'goodall', 'hamilton', 'hawking', 'heisenberg', 'hermann', 'hodgkin', 'hofstadter', 'hoover', 'hopper', 'hypatia',
  'jackson', 'jang', 'jennings', 'johnson', 'joliot', 'kalam', 'kare', 'keller', 'kepler', 'knuth',
  'kowalevski', 'lalande', 'lamarr', 'lamport', 'leakey', 'leavitt', 'lovelace', 'lumiere', 'mahavira', 'margulis',
  'matsumoto', 'maxwell', 'mayer', 'mccarthy', 'mcclintock', 'meitner', 'mendel', 'merkle', 'mirzakhani', 'moore',
  'morse', 'napier', 'nash', 'newton', 'nobel', 'noether', 'northcutt', 'noyce', 'pare', 'pascal',
  'pasteur', 'payne', 'perlman', 'pike', 'poincare', 'ptolemy', 'raman', 'ramanujan', 'ride', 'ritchie',
  'rosalind', 'saha', 'sammet', 'shamir', 'shannon', 'shaw', 'shockley', 'sinoussi', 'snyder', 'spence',
  'stonebraker', 'sutherland', 'swanson', 'swartz', 'tesla', 'thompson', 'torvalds', 'turing', 'varahamihira', 'visvesvaraya',
  'volhard', 'wescoff', 'wilbur', 'wiles', 'williams', 'wilson', 'wing', 'wozniak', 'wright', 'wu',
  'yalow', 'yonath', 'zhukovsky',
];

function pick<T>(a: readonly T[]): T {
  return a[randomBytes(4).readUInt32BE(0) % a.length];
}

/** A free Docker-style name ('focused_turing'); a digit is added after many clashes, as Docker does. */
export function randomName(taken: (name: string) => boolean): string {
  for (let i = 0; ; i++) {
    let name = `${pick(LEFT)}_${pick(RIGHT)}`;
    if (name === 'boring_wozniak') continue; // Steve Wozniak is not boring (moby's rule)
    if (i >= 10) name += String(randomBytes(1)[0] % 10);
    if (!taken(name)) return name;
  }
}
