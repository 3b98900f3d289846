//! `Mpeg1Encoder`: libavcodec's `mpeg1video` encoder behind a plain Rust API, with no
//! GStreamer in it. I420 pictures in, MPEG-1 video elementary-stream packets out, one per
//! picture, in input order (never B-frames, so no reordering), one picture late (`delay`).

use ffmpeg::codec;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as AvFrame;
use ffmpeg::{Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::avframe::{self, SharedPicture};
use super::policy::{codec_bit_rate, encoded_size, known_fps, mpeg1_frame_rate, SizeError};

/// How to encode; read when an encoder is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target average bit rate, bit/s.
    pub bitrate: u32,
    /// At most this many frames from one I-frame to the next.
    pub gop_size: u32,
    /// Wider inputs are scaled down to this width keeping their aspect; 0 keeps the size.
    pub max_width: u32,
    /// Largest quantizer (1..=31); lower keeps quality up at the cost of overshooting.
    pub qmax: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings { bitrate: 1_000_000, gop_size: 30, max_width: 0, qmax: 31 }
    }
}

/// The input: one I420 picture as three planes with their strides (bytes per row).
#[derive(Debug, Clone, Copy)]
pub struct I420Picture<'a> {
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

/// One coded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    /// The picture, preceded by a sequence header and GOP header when it is an I-frame.
    pub data: Vec<u8>,
    /// The `pts` given to `encode` for this picture.
    pub pts: i64,
    /// An I-frame: a decoder can start here.
    pub keyframe: bool,
}

/// Something went wrong encoding.
#[derive(Debug, thiserror::Error)]
pub enum Mpeg1Error {
    #[error("libavcodec has no MPEG-1 video encoder")]
    NoEncoder,
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error("cannot open the MPEG-1 encoder for {width}x{height} at {fps_num}/{fps_den} fps: {source}")]
    Open { width: u32, height: u32, fps_num: i32, fps_den: i32, source: ffmpeg::Error },
    #[error("picture is {got_w}x{got_h}, the encoder was made for {want_w}x{want_h}")]
    WrongSize { got_w: u32, got_h: u32, want_w: u32, want_h: u32 },
    #[error("plane {plane} is too short: {len} bytes for {rows} rows of {row} bytes with stride {stride}")]
    ShortPlane { plane: usize, len: usize, rows: usize, row: usize, stride: usize },
    #[error("cannot scale the picture: {0}")]
    Scale(ffmpeg::Error),
    #[error("libavcodec failed to encode: {0}")]
    Encode(ffmpeg::Error),
}

/// An open libavcodec `mpeg1video` encoder for one input size and rate.
pub struct Mpeg1Encoder {
    encoder: codec::encoder::video::Encoder,
    input_size: (u32, u32),
    output_size: (u32, u32),
    frame_rate: (i32, i32),
    /// The picture handed to libavcodec when it is copied or scaled, at the encoded size.
    frame: AvFrame,
    /// Only when scaling (`max_width`).
    scaler: Option<Scaler>,
}

/// libswscale's context, owned by one encoder.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext has no thread affinity; it is only reached through `&mut self` of the
// one encoder owning it, so it is never used from two threads at once.
unsafe impl Send for Scaler {}

impl Mpeg1Encoder {
    /// Opens an encoder for `width`x`height` input at `fps` (`num/den`, any value: it is
    /// fitted to an MPEG-1 rate, see `policy::mpeg1_frame_rate`). Sizes follow
    /// `policy::encoded_size`; `par` is the pixel aspect ratio, written to the sequence header.
    pub fn new(
        settings: &EncoderSettings,
        width: u32,
        height: u32,
        fps: (i32, i32),
        par: (i32, i32),
    ) -> Result<Mpeg1Encoder, Mpeg1Error> {
        ffmpeg::init().map_err(|e| Mpeg1Error::Open { width, height, fps_num: fps.0, fps_den: fps.1, source: e })?;
        let (out_w, out_h) = encoded_size(width, height, settings.max_width)?;
        let frame_rate = mpeg1_frame_rate(fps.0, fps.1);
        let open_err = |source| Mpeg1Error::Open {
            width: out_w,
            height: out_h,
            fps_num: frame_rate.0,
            fps_den: frame_rate.1,
            source,
        };

        let codec = codec::encoder::find(codec::Id::MPEG1VIDEO).ok_or(Mpeg1Error::NoEncoder)?;
        let mut video = codec::Context::new_with_codec(codec).encoder().video().map_err(open_err)?;
        video.set_width(out_w);
        video.set_height(out_h);
        video.set_format(Pixel::YUV420P);
        // Time base: one tick per frame at the encoded rate; pts are frame numbers.
        video.set_time_base(Rational::new(frame_rate.1, frame_rate.0));
        video.set_frame_rate(Some(Rational::new(frame_rate.0, frame_rate.1)));
        video.set_bit_rate(codec_bit_rate(settings.bitrate, known_fps(fps.0, fps.1), frame_rate) as usize);
        video.set_gop(settings.gop_size.max(1));
        video.set_max_b_frames(0);
        video.set_qmax(settings.qmax.clamp(1, 31) as i32);
        if par.0 > 0 && par.1 > 0 {
            video.set_aspect_ratio(Rational::new(par.0, par.1));
        }
        video.set_threading(codec::threading::Config::count(1));
        // No AV_CODEC_FLAG_GLOBAL_HEADER: every I-frame carries its own sequence header.
        video.set_flags(codec::Flags::empty());
        let encoder = video.open_as(codec).map_err(open_err)?;

        let scaler = if (out_w, out_h) != (width & !1, height & !1) {
            let context = scaling::Context::get(
                Pixel::YUV420P,
                width,
                height,
                Pixel::YUV420P,
                out_w,
                out_h,
                scaling::Flags::BILINEAR,
            )
            .map_err(Mpeg1Error::Scale)?;
            Some(Scaler(context))
        } else {
            None
        };
        Ok(Mpeg1Encoder {
            encoder,
            input_size: (width, height),
            output_size: (out_w, out_h),
            frame_rate,
            frame: AvFrame::new(Pixel::YUV420P, out_w, out_h),
            scaler,
        })
    }

    /// The size coded in the stream.
    pub fn output_size(&self) -> (u32, u32) {
        self.output_size
    }

    /// The frame rate declared in the stream (one of `policy::MPEG1_RATES`).
    pub fn frame_rate(&self) -> (i32, i32) {
        self.frame_rate
    }

    /// How many pictures libavcodec holds before giving out a packet (1 for MPEG-1: its
    /// low-delay mode is MPEG-2 only); `encode` returns packets that much late.
    pub fn delay(&self) -> u32 {
        // SAFETY: reading a plain field of the open codec context we own.
        unsafe { (*self.encoder.as_ptr()).delay.max(0) as u32 }
    }

    /// Encodes one picture, copied (or scaled) into a frame of ours first. `pts` must
    /// increase from call to call (any steps); it comes back on the packet. `force_keyframe`
    /// makes this picture an I-frame (with a sequence header).
    pub fn encode(
        &mut self,
        picture: &I420Picture,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedPacket>, Mpeg1Error> {
        self.check(picture)?;
        make_writable(&mut self.frame)?;
        match &mut self.scaler {
            // SAFETY: the context is ours, reached only through `&mut self`.
            Some(scaler) => {
                avframe::scale(unsafe { scaler.0.as_mut_ptr() }, picture, &mut self.frame).map_err(Mpeg1Error::Scale)?
            }
            // Copying only the encoded (even) size crops an odd last column/row.
            None => copy_planes(picture, &mut self.frame),
        }
        // SAFETY: our own allocated frame.
        let frame = unsafe { self.frame.as_mut_ptr() };
        avframe::stamp(frame, pts, force_keyframe);
        self.send(frame)
    }

    /// Like `encode`, but libavcodec reads the picture where it is, without a copy of ours:
    /// `owner` is kept alive until libavcodec is done with it. (When scaling, the scaler reads
    /// it in place and it is released at once.)
    pub fn encode_shared<P: SharedPicture>(
        &mut self,
        owner: P,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedPacket>, Mpeg1Error> {
        if self.scaler.is_some() {
            return self.encode(&owner.picture(), pts, force_keyframe);
        }
        self.check(&owner.picture())?;
        let (w, h) = self.output_size;
        let mut frame = avframe::wrap(owner, w, h).map_err(Mpeg1Error::Encode)?;
        avframe::stamp(frame.as_mut_ptr(), pts, force_keyframe);
        self.send(frame.as_ptr())
    }

    fn check(&self, picture: &I420Picture) -> Result<(), Mpeg1Error> {
        let (want_w, want_h) = self.input_size;
        if (picture.width, picture.height) != (want_w, want_h) {
            return Err(Mpeg1Error::WrongSize { got_w: picture.width, got_h: picture.height, want_w, want_h });
        }
        check_planes(picture)
    }

    fn send(&mut self, frame: *const ffmpeg::ffi::AVFrame) -> Result<Vec<EncodedPacket>, Mpeg1Error> {
        // SAFETY: an open encoder of ours and a valid, filled frame; libavcodec takes its own
        // reference to the frame's buffers.
        let ret = unsafe { ffmpeg::ffi::avcodec_send_frame(self.encoder.as_mut_ptr(), frame) };
        if ret < 0 {
            return Err(Mpeg1Error::Encode(ffmpeg::Error::from(ret)));
        }
        self.receive()
    }

    /// Ends the stream: returns any packets still inside the encoder.
    pub fn flush(&mut self) -> Result<Vec<EncodedPacket>, Mpeg1Error> {
        match self.encoder.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => {}
            Err(e) => return Err(Mpeg1Error::Encode(e)),
        }
        self.receive()
    }

    fn receive(&mut self) -> Result<Vec<EncodedPacket>, Mpeg1Error> {
        let mut out = Vec::new();
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => out.push(EncodedPacket {
                    data: packet.data().map(<[u8]>::to_vec).unwrap_or_default(),
                    pts: packet.pts().unwrap_or(0),
                    keyframe: packet.is_key(),
                }),
                Err(ffmpeg::Error::Eof) => return Ok(out),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => return Ok(out),
                Err(e) => return Err(Mpeg1Error::Encode(e)),
            }
        }
    }
}

/// Bytes per row and rows of plane `i` of an I420 picture `w`x`h`.
fn plane_extent(i: usize, w: u32, h: u32) -> (usize, usize) {
    if i == 0 {
        (w as usize, h as usize)
    } else {
        (w.div_ceil(2) as usize, h.div_ceil(2) as usize)
    }
}

fn check_planes(picture: &I420Picture) -> Result<(), Mpeg1Error> {
    for i in 0..3 {
        let (row, rows) = plane_extent(i, picture.width, picture.height);
        let (len, stride) = (picture.planes[i].len(), picture.strides[i]);
        let needed = stride.checked_mul(rows.saturating_sub(1)).and_then(|n| n.checked_add(row));
        if stride < row || needed.is_none_or(|n| n > len) {
            return Err(Mpeg1Error::ShortPlane { plane: i, len, rows, row, stride });
        }
    }
    Ok(())
}

/// Copies the picture into `frame`, which may be smaller (then the right/bottom is cut off).
/// The planes were checked by `check_planes`.
fn copy_planes(picture: &I420Picture, frame: &mut AvFrame) {
    let (fw, fh) = (frame.width(), frame.height());
    for i in 0..3 {
        let (row, rows) = plane_extent(i, fw, fh);
        let dst_stride = frame.stride(i);
        let dst = frame.data_mut(i);
        let src = picture.planes[i];
        let src_stride = picture.strides[i];
        for y in 0..rows {
            dst[y * dst_stride..y * dst_stride + row].copy_from_slice(&src[y * src_stride..y * src_stride + row]);
        }
    }
}

/// libavcodec may still hold the last picture's buffers; get fresh ones if so.
fn make_writable(frame: &mut AvFrame) -> Result<(), Mpeg1Error> {
    // SAFETY: the frame is a valid, allocated AVFrame owned by us.
    let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if ret < 0 {
        return Err(Mpeg1Error::Encode(ffmpeg::Error::from(ret)));
    }
    Ok(())
}
