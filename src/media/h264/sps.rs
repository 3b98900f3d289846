//! H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1): picture size, frame rate, reorder hints.
use tracing::debug;

use super::{unescape_rbsp, H264Error, NAL_SPS};
use crate::media::bits::{BitReader, BitsError};

/// The fields of an SPS the gateway uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    pub profile_idc: u8,
    /// The constraint_set flags byte (as in avcC's profile_compatibility).
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub sps_id: u32,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
    pub frame_mbs_only: bool,
    /// Frames per second from the VUI timing info (`time_scale / (2 * num_units_in_tick)`).
    pub fps: Option<f64>,
    /// VUI bitstream restriction `max_num_reorder_frames`, when present.
    pub max_num_reorder_frames: Option<u32>,
}

/// Largest picture side accepted, in pixels (H.264 level 6.2 allows 8192x4320; leave room).
const MAX_SIDE: u32 = 16_384;

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte NAL header, emulation prevention bytes in place).
    pub fn parse(nal: &[u8]) -> Result<Sps, H264Error> {
        let header = *nal.first().ok_or(H264Error::Truncated("SPS"))?;
        if header & 0x1f != NAL_SPS {
            return Err(H264Error::Invalid(format!("NAL type {} is not an SPS", header & 0x1f)));
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        parse_rbsp(&rbsp).map_err(|_| H264Error::Truncated("SPS"))?
    }

    /// Can the stream contain B-frames (frames decoded before they are shown)? `None` when
    /// the SPS does not say.
    pub fn may_have_bframes(&self) -> Option<bool> {
        match self.max_num_reorder_frames {
            Some(n) => Some(n > 0),
            // Constrained baseline / baseline have no B slices.
            None if self.profile_idc == 66 => Some(false),
            None => None,
        }
    }
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
fn has_high_profile_fields(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135)
}

/// The outer `Result` is for running out of bits; the inner one for values out of range.
fn parse_rbsp(rbsp: &[u8]) -> Result<Result<Sps, H264Error>, BitsError> {
    let mut r = BitReader::new(rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let sps_id = r.ue()?;
    if sps_id > 31 {
        return Ok(Err(H264Error::Invalid(format!("seq_parameter_set_id {sps_id} > 31"))));
    }
    let (mut chroma_format_idc, mut separate_colour_plane) = (1, false);
    let (mut bit_depth_luma, mut bit_depth_chroma) = (8, 8);
    if has_high_profile_fields(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Ok(Err(H264Error::Invalid(format!("chroma_format_idc {chroma_format_idc}"))));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let luma = r.ue()?;
        let chroma = r.ue()?;
        if luma > 6 || chroma > 6 {
            return Ok(Err(H264Error::Invalid("bit depth above 14".into())));
        }
        bit_depth_luma = 8 + luma as u8;
        bit_depth_chroma = 8 + chroma as u8;
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let poc_type = r.ue()?;
    match poc_type {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Ok(Err(H264Error::Invalid("num_ref_frames_in_pic_order_cnt_cycle".into())));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        other => return Ok(Err(H264Error::Invalid(format!("pic_order_cnt_type {other}")))),
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let crop = if r.bit()? { [r.ue()?, r.ue()?, r.ue()?, r.ue()?] } else { [0; 4] };
    let vui_present = r.bit()?;

    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (crop_unit_x, crop_unit_y): (u64, u64) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_width = width_mbs * 16;
    let full_height = field_factor * height_map_units * 16;
    let crop_x = (u64::from(crop[0]) + u64::from(crop[1])) * crop_unit_x;
    let crop_y = (u64::from(crop[2]) + u64::from(crop[3])) * crop_unit_y;
    if crop_x >= full_width || crop_y >= full_height {
        return Ok(Err(H264Error::Invalid("frame cropping larger than the picture".into())));
    }
    let (width, height) = (full_width - crop_x, full_height - crop_y);
    if width > u64::from(MAX_SIDE) || height > u64::from(MAX_SIDE) {
        return Ok(Err(H264Error::Invalid(format!("picture size {width}x{height}"))));
    }

    let vui = if vui_present {
        // A truncated or odd VUI does not make the picture size wrong: keep what was read.
        parse_vui(&mut r).unwrap_or_else(|_| {
            debug!("H.264 SPS: VUI truncated, ignoring its timing and reorder info");
            Vui::default()
        })
    } else {
        Vui::default()
    };

    Ok(Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        sps_id,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width: width as u32,
        height: height as u32,
        frame_mbs_only,
        fps: vui.fps,
        max_num_reorder_frames: vui.max_num_reorder_frames,
    }))
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), BitsError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Vui {
    fps: Option<f64>,
    max_num_reorder_frames: Option<u32>,
}

fn parse_vui(r: &mut BitReader<'_>) -> Result<Vui, BitsError> {
    let mut vui = Vui::default();
    if r.bit()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.skip(32)?; // Extended_SAR: sar_width, sar_height
        }
    }
    if r.bit()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.bit()? {
        // video_signal_type_present_flag: video_format, video_full_range_flag
        r.skip(4)?;
        if r.bit()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.bit()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    if r.bit()? {
        let num_units_in_tick = r.bits(32)?;
        let time_scale = r.bits(32)?;
        r.bit()?; // fixed_frame_rate_flag
        if num_units_in_tick > 0 && time_scale > 0 {
            let fps = f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick));
            vui.fps = Some(fps);
        }
    }
    let nal_hrd = r.bit()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.bit()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    if r.bit()? {
        // bitstream_restriction_flag
        r.bit()?; // motion_vectors_over_pic_boundaries_flag
        r.ue()?; // max_bytes_per_pic_denom
        r.ue()?; // max_bits_per_mb_denom
        r.ue()?; // log2_max_mv_length_horizontal
        r.ue()?; // log2_max_mv_length_vertical
        vui.max_num_reorder_frames = Some(r.ue()?);
        r.ue()?; // max_dec_frame_buffering
    }
    Ok(vui)
}

fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), BitsError> {
    let cpb_cnt = r.ue()? + 1;
    if cpb_cnt > 32 {
        return Err(BitsError);
    }
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.bit()?; // cbr_flag
    }
    r.skip(20) // four 5-bit delay/length fields
}
