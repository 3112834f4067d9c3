/*
 * rtdecode_trigger: the serial TTL trigger device of rtdecode.
 *
 * The host (rtdecode/stimulation/protocol.py, which specifies the protocol)
 * sends 12-byte commands; each is acknowledged at once with an 8-byte frame
 * carrying the device's micros() at the moment the command was read. Pulse
 * trains and timed outputs run from a state machine in loop(): nothing here
 * blocks (no delay()), so commands keep being read while outputs are timed.
 *
 * If no valid frame arrives for the watchdog timeout (500 ms, set by W),
 * every output goes LOW and an unsolicited status-4 frame is sent.
 *
 * Builds for AVR boards (Uno, Nano, Mega) and Teensy; see firmware/README.md.
 */

#include <Arduino.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

// Output channel n drives pin OUTPUT_PINS[n]. Uno/Nano: channels 0-7 are
// D2-D9 (D0/D1 carry the serial port, D13 the LED). Keep this the only place
// the pins are named (the simulator test reads this table).
static const uint8_t OUTPUT_PINS[] = {2, 3, 4, 5, 6, 7, 8, 9};

// 1,000,000 baud is exact on a 16 MHz AVR (UBRR = 1 with U2X), unlike
// 115200 (-3.5 %). Teensy's USB serial ignores it.
#ifndef SERIAL_BAUD
#define SERIAL_BAUD 1000000UL
#endif

#ifndef DEFAULT_WATCHDOG_MS
#define DEFAULT_WATCHDOG_MS 500
#endif

// A frame whose 12 bytes have not all arrived this long after its sync byte
// is dropped: a host that died mid-frame must not corrupt the next command.
// (12 bytes take 120 us at 1 Mbaud; USB delivers a frame in one packet.)
#define FRAME_GAP_US 20000UL

// ---------------------------------------------------------------------------
// Protocol constants (rtdecode/stimulation/protocol.py)
// ---------------------------------------------------------------------------

enum { HOST_SYNC = 0xA5, DEVICE_SYNC = 0x5A, COMMAND_SIZE = 12, ACK_SIZE = 8 };
enum {
  STATUS_OK = 0,
  STATUS_BAD_CHECKSUM = 1,
  STATUS_UNKNOWN = 2,
  STATUS_BAD_ARGUMENT = 3,
  STATUS_WATCHDOG = 4,
};

static const uint8_t N_OUTPUTS = sizeof(OUTPUT_PINS) / sizeof(OUTPUT_PINS[0]);

// ---------------------------------------------------------------------------
// Output channels
// ---------------------------------------------------------------------------

enum Mode : uint8_t {
  IDLE,       // nothing scheduled (the output may still be HIGH after an H)
  TRAIN,      // P: pulses pending or running
  GATE_WAIT,  // H: waiting for its delay to pass
  GATE_ON,    // H: on, to be turned off at its maximum on-time
};

struct Channel {
  uint8_t mode;
  bool high;
  uint8_t left;        // TRAIN: pulses not started yet
  uint32_t next_us;    // when the next transition is due (micros())
  uint32_t onset_us;   // TRAIN: the current pulse's onset
  uint32_t width_us;   // TRAIN: pulse width; GATE_*: maximum on-time (0: none)
  uint32_t period_us;  // TRAIN: onset to onset
};

static Channel channels[N_OUTPUTS];

static void drive(uint8_t c, bool high) {
  digitalWrite(OUTPUT_PINS[c], high ? HIGH : LOW);
  channels[c].high = high;
}

// Deadlines are compared by signed difference, so micros() may wrap (every
// ~71 minutes) in the middle of a train.
static inline bool due(uint32_t now, uint32_t when) { return (int32_t)(now - when) >= 0; }

// One transition at most per call; loop() calls it again at once.
static void service(uint8_t c, uint32_t now) {
  Channel &ch = channels[c];
  if (ch.mode == IDLE || !due(now, ch.next_us)) return;
  switch (ch.mode) {
    case TRAIN:
      if (!ch.high) {  // onset
        drive(c, true);
        ch.onset_us = ch.next_us;
        ch.next_us = ch.onset_us + ch.width_us;
        ch.left--;
      } else if (ch.left == 0) {  // end of the last pulse
        drive(c, false);
        ch.mode = IDLE;
      } else if (ch.period_us == ch.width_us) {  // back-to-back pulses: no gap to make
        ch.onset_us = ch.next_us;
        ch.next_us = ch.onset_us + ch.width_us;
        ch.left--;
      } else {  // end of a pulse; the next onset is counted from this one's, so no drift
        drive(c, false);
        ch.next_us = ch.onset_us + ch.period_us;
      }
      break;
    case GATE_WAIT:
      drive(c, true);
      if (ch.width_us) {
        ch.mode = GATE_ON;
        ch.next_us += ch.width_us;
      } else {
        ch.mode = IDLE;  // on until L, X or the watchdog
      }
      break;
    case GATE_ON:
      drive(c, false);
      ch.mode = IDLE;
      break;
  }
}

static void all_off() {
  for (uint8_t c = 0; c < N_OUTPUTS; c++) {
    channels[c].mode = IDLE;
    drive(c, false);
  }
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

static void send_ack(uint8_t seq, uint8_t status, uint32_t us) {
  uint8_t f[ACK_SIZE] = {DEVICE_SYNC, seq, status, (uint8_t)us, (uint8_t)(us >> 8),
                         (uint8_t)(us >> 16), (uint8_t)(us >> 24), 0};
  for (uint8_t i = 1; i < ACK_SIZE - 1; i++) f[ACK_SIZE - 1] ^= f[i];
  Serial.write(f, ACK_SIZE);
#if defined(TEENSYDUINO)
  Serial.send_now();  // otherwise USB serial holds small writes for up to a few ms
#endif
}

static uint32_t watchdog_us = DEFAULT_WATCHDOG_MS * 1000UL;
static uint32_t last_frame_us;
// Armed by every valid frame, disarmed when it fires: it fires once per
// silence, and not at power-up (the outputs start LOW anyway).
static bool watchdog_armed = false;

static inline uint16_t le16(const uint8_t *p) { return p[0] | (uint16_t)p[1] << 8; }

// A 12-byte frame with a good checksum, read at `now`.
static void execute(const uint8_t *f, uint32_t now) {
  const uint8_t command = f[1], seq = f[2], c = f[3], pulses = f[10];
  const uint16_t delay_ms = le16(f + 4), duration_ms = le16(f + 6), period_ms = le16(f + 8);
  uint8_t status = STATUS_OK;

  last_frame_us = now;
  watchdog_armed = true;

  switch (command) {
    case 'P':
      if (c >= N_OUTPUTS || pulses == 0 || (pulses > 1 && period_ms < duration_ms)) {
        status = STATUS_BAD_ARGUMENT;
        break;
      }
      // A new P replaces what the channel was doing; a train starts from LOW.
      drive(c, false);
      channels[c].mode = TRAIN;
      channels[c].left = pulses;
      channels[c].width_us = duration_ms * 1000UL;
      channels[c].period_us = period_ms * 1000UL;
      channels[c].next_us = now + delay_ms * 1000UL;
      service(c, micros());  // delay 0: the onset goes out before the ack
      break;
    case 'H':
      if (c >= N_OUTPUTS) {
        status = STATUS_BAD_ARGUMENT;
        break;
      }
      // Replaces the channel's schedule; the output keeps its level until
      // the delay has passed, and the maximum on-time counts from then.
      channels[c].mode = GATE_WAIT;
      channels[c].width_us = duration_ms * 1000UL;
      channels[c].next_us = now + delay_ms * 1000UL;
      service(c, micros());
      break;
    case 'L':
      if (c >= N_OUTPUTS) {
        status = STATUS_BAD_ARGUMENT;
        break;
      }
      channels[c].mode = IDLE;
      drive(c, false);
      break;
    case 'B':
      break;  // resetting the watchdog (above) is all it does
    case 'W':
      if (duration_ms == 0) {  // a zero timeout would fire at once, every time
        status = STATUS_BAD_ARGUMENT;
        break;
      }
      watchdog_us = duration_ms * 1000UL;
      break;
    case 'X':
      all_off();
      break;
    default:
      status = STATUS_UNKNOWN;
  }
  send_ack(seq, status, now);
}

static uint8_t frame[COMMAND_SIZE];
static uint8_t frame_len = 0;
static uint32_t frame_start_us;
// True while the bytes being assembled were re-scanned out of a frame that
// failed its checksum: such a window is part of the same corruption, so
// failing again is not reported a second time.
static bool rescanned = false;

static void take_byte(uint8_t b, uint32_t now) {
  if (frame_len == 0) {
    if (b != HOST_SYNC) return;
    frame_start_us = now;
    rescanned = false;
  }
  frame[frame_len++] = b;
  if (frame_len < COMMAND_SIZE) return;

  uint8_t x = 0;
  for (uint8_t i = 1; i < COMMAND_SIZE - 1; i++) x ^= frame[i];
  if (x == frame[COMMAND_SIZE - 1]) {
    frame_len = 0;
    execute(frame, now);
    return;
  }
  if (!rescanned) send_ack(frame[2], STATUS_BAD_CHECKSUM, now);
  // Resynchronise: the frame may have started on a stray 0xA5, so look for
  // the next sync byte among the bytes already received.
  uint8_t i = 1;
  while (i < COMMAND_SIZE && frame[i] != HOST_SYNC) i++;
  frame_len = COMMAND_SIZE - i;
  memmove(frame, frame + i, frame_len);
  rescanned = frame_len > 0;
}

// ---------------------------------------------------------------------------

void setup() {
  for (uint8_t c = 0; c < N_OUTPUTS; c++) {
    digitalWrite(OUTPUT_PINS[c], LOW);  // LOW before OUTPUT: no glitch at power-up
    pinMode(OUTPUT_PINS[c], OUTPUT);
    channels[c].mode = IDLE;
    channels[c].high = false;
  }
  Serial.begin(SERIAL_BAUD);
}

void loop() {
  while (Serial.available() > 0) {
    uint8_t b = Serial.read();
    take_byte(b, micros());
  }
  uint32_t now = micros();
  if (frame_len && now - frame_start_us > FRAME_GAP_US) frame_len = 0;
  for (uint8_t c = 0; c < N_OUTPUTS; c++) service(c, now);
  if (watchdog_armed && now - last_frame_us >= watchdog_us) {
    all_off();
    watchdog_armed = false;
    send_ack(0, STATUS_WATCHDOG, now);
  }
}
